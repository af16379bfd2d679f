//! The panic boundary: every function the broker calls runs inside one, and a panic (which
//! must never unwind into C) turns into the given fail-closed return value.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`; if it panics, returns `on_panic` instead. The body's own errors are its
/// business: it returns the broker code it wants.
#[inline(always)]
pub(crate) fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// Declares an `extern "C"` function whose whole body runs behind [`guard`].
macro_rules! ffi_guarded {
    (
        $(#[$meta:meta])*
        $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty, on_panic = $fail:expr, $body:block
    ) => {
        $(#[$meta])*
        ///
        /// # Safety
        /// Called by the broker, with the arguments its plugin API documents.
        $vis unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            $crate::plugin::boundary::guard($fail, || $body)
        }
    };
}

pub(crate) use ffi_guarded;

#[cfg(test)]
mod tests {
    use super::guard;

    #[test]
    fn a_panic_becomes_the_fail_closed_value() {
        assert_eq!(guard(12, || 0), 0);
        assert_eq!(guard(12, || -> i32 { panic!("callback bug") }), 12);
        // Nested: the inner boundary answers, the outer one sees a normal return.
        assert_eq!(
            guard(1, || guard(2, || -> i32 { panic!("inner") }) + 40),
            42
        );
    }

    ffi_guarded! {
        /// A callback shaped like the broker's, for the test below.
        fn sample(value: i32) -> i32,
        on_panic = -1,
        {
            if value < 0 {
                panic!("negative");
            }
            value * 2
        }
    }

    #[test]
    fn ffi_guarded_functions_never_unwind() {
        // SAFETY: `sample` has no preconditions.
        assert_eq!(unsafe { sample(21) }, 42);
        // SAFETY: as above.
        assert_eq!(unsafe { sample(-1) }, -1);
    }
}
