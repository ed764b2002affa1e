//! Vault speed: `cargo bench --bench vault`.
//! - seal + open of a 64-byte secret with a tenant data key;
//! - re-wrapping 100,000 tenant data keys under a new master key, in memory (the crypto)
//!   and end to end through SQLite (what `switchboard keys rotate` does).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use diesel::RunQueryDsl;
use secrecy::{ExposeSecret, SecretString};
use switchboard::commands::keys::{DEFAULT_BATCH, rewrap_all};
use switchboard::config::Config;
use switchboard::domain::TenantId;
use switchboard::startup::open_store_and_vault;
use switchboard::store::tenant_keys;
use switchboard::vault::{KeyRing, KeySource, MasterKey, SealContext, Vault, WrappedKey};

const KEYS: usize = 100_000;

fn ring(entries: &[&MasterKey]) -> Vault {
    let text = entries
        .iter()
        .map(|k| k.to_config_entry().expose_secret().to_owned())
        .collect::<Vec<_>>()
        .join(",");
    Vault::from_ring(KeyRing::load(KeySource::Inline(SecretString::from(text))).unwrap())
}

fn seal_open(c: &mut Criterion) {
    let tenant = TenantId::generate();
    let key = switchboard::vault::DataKey::generate(tenant, 1);
    let context = SealContext {
        tenant,
        record: "0b9e5f8e-6a39-4c53-9d43-0c2c0f7c1f11",
        field: "password",
    };
    let secret = SecretString::from("x".repeat(64));
    let mut group = c.benchmark_group("vault");
    group.throughput(Throughput::Elements(1));
    group.bench_function("seal+open 64-byte secret", |b| {
        b.iter(|| {
            let sealed = key.seal(&context, black_box(&secret));
            black_box(key.open(&context, &sealed).unwrap());
        })
    });
    group.finish();
}

fn rewrap_in_memory(c: &mut Criterion) {
    let (k1, k2) = (MasterKey::generate("k1"), MasterKey::generate("k2"));
    let old = ring(&[&k1]);
    let new = ring(&[&k2, &k1]);
    let wrapped: Vec<(TenantId, WrappedKey)> = (0..KEYS)
        .map(|_| {
            let tenant = TenantId::generate();
            (tenant, old.new_data_key(tenant, 1).1)
        })
        .collect();
    let mut group = c.benchmark_group("vault");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("re-wrap 100k data keys (crypto only)", |b| {
        b.iter(|| {
            for (tenant, w) in &wrapped {
                black_box(new.rewrap_to("k2", *tenant, 1, w).unwrap());
            }
        })
    });
    group.finish();
}

fn rewrap_sqlite(c: &mut Criterion) {
    let dir = tempfile::TempDir::new().unwrap();
    let (k1, k2) = (MasterKey::generate("k1"), MasterKey::generate("k2"));
    let entry = |k: &MasterKey| k.to_config_entry().expose_secret().to_owned();
    let data_dir = dir.path().to_owned();
    let config_with = |keys: String| {
        let data_dir = data_dir.clone();
        Config::from_lookup(move |name| match name {
            "SWITCHBOARD_DATA_DIR" => Some(data_dir.display().to_string()),
            "SWITCHBOARD_MASTER_KEYS" => Some(keys.clone()),
            _ => None,
        })
        .unwrap()
    };
    let (store, only_k1) = open_store_and_vault(&config_with(entry(&k1))).unwrap();
    store
        .run_blocking(|conn| {
            use diesel::Connection;
            conn.transaction(|conn| {
                for i in 0..KEYS {
                    let tenant = TenantId::generate();
                    diesel::sql_query(format!(
                        "INSERT INTO tenants (id, name, created_at, updated_at) VALUES ('{tenant}', 'bench {i}', 0, 0)"
                    ))
                    .execute(conn)?;
                    tenant_keys::create_first(conn, &only_k1, tenant)?;
                }
                Ok(())
            })
        })
        .unwrap();
    // Alternate the direction each run, so every run re-wraps all 100k keys.
    let towards_k2 = ring(&[&k2, &k1]);
    let towards_k1 = ring(&[&k1, &k2]);
    let mut flip = false;
    let mut group = c.benchmark_group("vault");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(KEYS as u64));
    group.bench_function("re-wrap 100k data keys through SQLite (keys rotate)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                flip = !flip;
                let vault = if flip { &towards_k2 } else { &towards_k1 };
                let started = Instant::now();
                let rotation = rewrap_all(&store, vault, DEFAULT_BATCH, |_| {}).unwrap();
                total += started.elapsed();
                assert_eq!(rotation.rewrapped, KEYS);
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, seal_open, rewrap_in_memory, rewrap_sqlite);
criterion_main!(benches);
