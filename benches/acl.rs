//! ACL decision cost at growing policy sizes and topic depths.
//!
//! Sizes as in the performance issue: 10, 1,000 and 100,000 rules for the deciding user (the
//! matching rule last in the file), 1, 100 and 10,000 patterns, topics of 1 to 20 levels.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use mqttguard::acl::{Access, AclPolicy, Client};

/// A policy where `pub` has `rules` rules (the one matching `site/pub/dev/last/temp` last),
/// 100 other users with 10 rules each, and `patterns` patterns (one matching `%c`).
fn policy(rules: usize, patterns: usize) -> AclPolicy {
    let mut text = String::new();
    for u in 0..100 {
        text.push_str(&format!("user other{u}\n"));
        for r in 0..10 {
            text.push_str(&format!("topic readwrite other/{u}/{r}/#\n"));
        }
    }
    text.push_str("user pub\n");
    for r in 0..rules.saturating_sub(1) {
        text.push_str(&format!("topic write site/pub/dev{r}/+/temp\n"));
    }
    text.push_str("topic write site/pub/dev/last/temp\n");
    for p in 0..patterns.saturating_sub(1) {
        text.push_str(&format!("pattern read tenant{p}/%c/#\n"));
    }
    text.push_str("pattern read devices/%c/cmd/#\n");
    AclPolicy::parse(Path::new("bench.acl"), text.as_bytes()).expect("bench policy parses")
}

fn decisions(c: &mut Criterion) {
    let client = Client {
        id: Some("sensor-17"),
        username: Some("pub"),
    };
    let mut group = c.benchmark_group("acl_user_rules");
    for rules in [10usize, 1_000, 100_000] {
        let p = policy(rules, 1);
        group.bench_with_input(BenchmarkId::from_parameter(rules), &p, |b, p| {
            b.iter(|| {
                p.check(
                    black_box(&client),
                    black_box("site/pub/dev/last/temp"),
                    Access::Write,
                    false,
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("acl_patterns");
    for patterns in [1usize, 100, 10_000] {
        let p = policy(10, patterns);
        group.bench_with_input(BenchmarkId::from_parameter(patterns), &p, |b, p| {
            b.iter(|| {
                p.check(
                    black_box(&client),
                    black_box("devices/sensor-17/cmd/reboot"),
                    Access::Read,
                    false,
                )
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("acl_topic_levels");
    let p = AclPolicy::parse(
        Path::new("bench.acl"),
        b"user pub\ntopic read a/#\ntopic deny a/b/secret\npattern read x/%c/#\n",
    )
    .expect("parses");
    for levels in [1usize, 5, 10, 20] {
        let topic = std::iter::once("a")
            .chain(std::iter::repeat_n("level", levels - 1))
            .collect::<Vec<_>>()
            .join("/");
        group.bench_with_input(BenchmarkId::from_parameter(levels), &topic, |b, t| {
            b.iter(|| p.check(black_box(&client), black_box(t), Access::Read, false))
        });
    }
    group.finish();

    let p = policy(10, 1);
    c.bench_function("acl_denied_no_match", |b| {
        b.iter(|| {
            p.check(
                black_box(&client),
                black_box("nowhere/x/y"),
                Access::Write,
                false,
            )
        })
    });
}

/// Counts live and peak heap bytes, for the memory figure (an ACL check allocates nothing, so
/// the timings are unaffected).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.alloc(layout) }
    }

    /// The system's `realloc`, as the broker's allocator does it. The peak counts a growing
    /// block's old and new copies together (glibc may have to copy), a shrinking block as
    /// shrunk in place (glibc always shrinks in place).
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
        }
        // SAFETY: as the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: as the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap held by a compiled policy of 10,000 users with 10 rules each (100,000 rules), and the
/// peak while it is built; printed, then the load itself is timed.
fn memory(c: &mut Criterion) {
    let mut text = String::new();
    for u in 0..10_000 {
        text.push_str(&format!("user u{u}\n"));
        for r in 0..10 {
            text.push_str(&format!("topic readwrite site/u{u}/{r}/#\n"));
        }
    }
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let p = AclPolicy::parse(Path::new("bench.acl"), text.as_bytes()).expect("parses");
    let live = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    println!(
        "acl_memory: 100,000 rules hold {live} bytes ({} per rule), peak while loading {peak} bytes",
        live / 100_000
    );
    drop(p);
    c.bench_function("acl_load_100k_rules", |b| {
        b.iter(|| AclPolicy::parse(Path::new("bench.acl"), black_box(text.as_bytes())))
    });
}

criterion_group!(benches, decisions, memory);
criterion_main!(benches);
