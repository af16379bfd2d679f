//! Password verification cost per scheme, and the same with the verified-credential cache.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use mqttguard::cache::CredentialCache;
use mqttguard::config::Config;
use mqttguard::passwd::hash::{hash_argon2id, hash_pbkdf2};
use mqttguard::passwd::PasswordDb;
use mqttguard::policy::Policy;

/// Written by mosquitto_passwd 2.0.11 (`-H sha512`), password "c4rol".
const SHA512_LINE: &str = "carol:$6$1w32hjbDJ6DspDhN$PadttJOXUYKcTMAVfFaiEqWdEnrOiuzv8qwJKorESwVIPq9CI9Jek+8+qP0kLVUUqP+s05Gbt7FyAPoUdECbWQ==";

fn policy() -> Policy {
    let text = format!(
        "{SHA512_LINE}\np101:{}\np1000:{}\nargon:{}\n",
        hash_pbkdf2(b"pw", 101).expect("hash"),
        hash_pbkdf2(b"pw", 1000).expect("hash"),
        hash_argon2id(b"pw").expect("hash"),
    );
    Policy::from_parts(
        Some(PasswordDb::parse(Path::new("bench"), text.as_bytes()).expect("parses")),
        None,
        Config::default(),
        None,
    )
}

fn verification(c: &mut Criterion) {
    let policy = policy();
    let mut group = c.benchmark_group("verify_uncached");
    group.sample_size(20);
    for (user, password) in [
        ("carol", b"c4rol".as_slice()),
        ("p101", b"pw"),
        ("p1000", b"pw"),
        ("argon", b"pw"),
    ] {
        let db = policy.passwd.as_ref().expect("db");
        group.bench_function(user, |b| {
            b.iter(|| db.verify(black_box(user), black_box(password)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("verify_cached");
    for user in ["p101", "argon"] {
        let cache = CredentialCache::new();
        policy.authenticate_cached(&cache, Some(user), Some(b"pw"));
        group.bench_function(user, |b| {
            b.iter(|| {
                policy.authenticate_cached(&cache, black_box(Some(user)), black_box(Some(b"pw")))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, verification);
criterion_main!(benches);
