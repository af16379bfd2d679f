//! The panic boundary: every function the broker calls runs inside one, and a panic (which
//! must never unwind into C) turns into the given fail-closed return value.

use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`; if it panics, returns `on_panic` instead. The body's own errors are its
/// business: it returns the broker code it wants.
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
