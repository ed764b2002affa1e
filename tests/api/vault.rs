//! The vault through the real app and database: sealed secrets, tampering, crypto-shredding,
//! master key checks at start, and rotations while the API is in use.

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection, RunQueryDsl};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use switchboard::commands::keys::rewrap_all;
use switchboard::domain::TenantId;
use switchboard::startup::open_store_and_vault;
use switchboard::store::{StoreError, audit, secrets, tenant_keys};

use crate::helpers::{TestApp, expect_json, master_key, spawn_app};

fn canary(label: &str) -> String {
    format!("Canary-{label}-{}", uuid::Uuid::new_v4().simple())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything the database holds, as bytes to search: the SQLite files, or every row of
/// every table of the test's PostgreSQL schema as text (bytea shows as hex there).
fn database_contents(app: &TestApp) -> Vec<u8> {
    match app.db.url() {
        None => {
            let mut all = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let path = app.data_dir.join(format!("switchboard.db{suffix}"));
                if let Ok(bytes) = std::fs::read(path) {
                    all.extend(bytes);
                }
            }
            all
        }
        Some(url) => {
            #[derive(diesel::QueryableByName)]
            struct Text {
                #[diesel(sql_type = diesel::sql_types::Text)]
                t: String,
            }
            let mut conn = PgConnection::establish(&url).unwrap();
            let tables: Vec<Text> = diesel::sql_query(
                "SELECT table_name::text AS t FROM information_schema.tables WHERE table_schema = current_schema()",
            )
            .load(&mut conn)
            .unwrap();
            let mut all = String::new();
            for table in tables {
                let rows: Vec<Text> = diesel::sql_query(format!(
                    "SELECT row_to_json(x)::text AS t FROM \"{}\" x",
                    table.t
                ))
                .load(&mut conn)
                .unwrap();
                for row in rows {
                    all.push_str(&row.t);
                }
            }
            all.into_bytes()
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

pub fn assert_nowhere_in_database(app: &TestApp, secret: &str) {
    let contents = database_contents(app);
    assert!(!contents.is_empty());
    assert!(
        !contains(&contents, secret.as_bytes()),
        "plaintext secret found in the database"
    );
    assert!(
        !contains(&contents, hex(secret.as_bytes()).as_bytes()),
        "hex of the secret found in the database"
    );
}

fn open(
    app: &TestApp,
    tenant: TenantId,
    owner: &str,
    field: &str,
) -> Result<Option<String>, StoreError> {
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();
    store
        .run_blocking(|conn| secrets::get(conn, &vault, tenant, owner, field))
        .map(|s| s.map(|s| s.expose_secret().to_owned()))
}

fn put(app: &TestApp, tenant: TenantId, owner: &str, field: &str, value: &str) {
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();
    store
        .run_blocking(|conn| {
            secrets::put(
                conn,
                &vault,
                tenant,
                owner,
                field,
                &SecretString::from(value.to_owned()),
            )
        })
        .unwrap();
}

/// The first row's `b` column of a query, as raw bytes (what a backup of that row holds).
fn first_blob(app: &TestApp, sql: &str) -> Vec<u8> {
    #[derive(diesel::QueryableByName)]
    struct Blob {
        #[diesel(sql_type = diesel::sql_types::Binary)]
        b: Vec<u8>,
    }
    let (store, _) = open_store_and_vault(&app.config()).unwrap();
    let rows: Vec<Blob> = store
        .run_blocking(|conn| Ok(diesel::sql_query(sql).load(conn)?))
        .unwrap();
    rows.into_iter().next().expect("a row").b
}

fn raw_sql(app: &TestApp, sql: &str) {
    let (store, _) = open_store_and_vault(&app.config()).unwrap();
    store
        .run_blocking(|conn| Ok(conn.batch_execute(sql)?))
        .unwrap();
}

#[tokio::test]
async fn secrets_are_stored_sealed_and_open_only_in_their_place() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let tenant: TenantId = acme.id.parse().unwrap();
    let password = canary("smtp-password");
    put(&app, tenant, "channel-1", "password", &password);

    assert_eq!(
        open(&app, tenant, "channel-1", "password")
            .unwrap()
            .as_deref(),
        Some(password.as_str())
    );
    assert_eq!(open(&app, tenant, "channel-1", "api_key").unwrap(), None);
    assert_nowhere_in_database(&app, &password);

    // Replacing the value keeps one row and opens to the new value.
    let rotated = canary("rotated");
    put(&app, tenant, "channel-1", "password", &rotated);
    assert_eq!(
        open(&app, tenant, "channel-1", "password")
            .unwrap()
            .as_deref(),
        Some(rotated.as_str())
    );
    assert_nowhere_in_database(&app, &rotated);
}

#[tokio::test]
async fn a_ciphertext_moved_to_another_row_field_or_tenant_or_flipped_does_not_open() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let globex = app.create_tenant("Globex").await;
    let (a, g): (TenantId, TenantId) = (acme.id.parse().unwrap(), globex.id.parse().unwrap());
    put(&app, a, "ch-a", "password", &canary("a"));
    put(&app, a, "ch-b", "password", &canary("b"));
    put(&app, a, "ch-a", "api_key", &canary("c"));
    put(&app, g, "ch-g", "password", &canary("g"));

    let copy = |to: (&str, &str, &str), from: (&str, &str, &str)| {
        format!(
            "UPDATE secrets SET sealed = (SELECT sealed FROM secrets WHERE tenant_id = '{}' AND owner_id = '{}' AND field = '{}') \
             WHERE tenant_id = '{}' AND owner_id = '{}' AND field = '{}'",
            from.0, from.1, from.2, to.0, to.1, to.2
        )
    };
    let (a, g_text) = (acme.id.as_str(), globex.id.as_str());
    // Another row of the same tenant and field.
    raw_sql(
        &app,
        &copy((a, "ch-b", "password"), (a, "ch-a", "password")),
    );
    // Another field of the same row.
    raw_sql(&app, &copy((a, "ch-a", "api_key"), (a, "ch-a", "password")));
    // Another tenant.
    raw_sql(
        &app,
        &copy((g_text, "ch-g", "password"), (a, "ch-a", "password")),
    );
    let acme_id: TenantId = acme.id.parse().unwrap();
    let globex_id: TenantId = globex.id.parse().unwrap();
    for (tenant, owner, field) in [
        (acme_id, "ch-b", "password"),
        (acme_id, "ch-a", "api_key"),
        (globex_id, "ch-g", "password"),
    ] {
        let err = open(&app, tenant, owner, field).unwrap_err();
        assert!(
            matches!(err, StoreError::Vault(_)),
            "{owner}/{field} opened after a move: {err}"
        );
    }
    // The original still opens; a flipped byte in it does not.
    assert!(open(&app, acme_id, "ch-a", "password").unwrap().is_some());
    let flip = if app.db.is_postgres() {
        "UPDATE secrets SET sealed = overlay(sealed placing '\\xff'::bytea from 30 for 1) WHERE owner_id = 'ch-a' AND field = 'password'"
    } else {
        "UPDATE secrets SET sealed = substr(sealed, 1, 29) || x'ff' || substr(sealed, 31) WHERE owner_id = 'ch-a' AND field = 'password'"
    };
    raw_sql(&app, flip);
    assert!(matches!(
        open(&app, acme_id, "ch-a", "password"),
        Err(StoreError::Vault(_))
    ));
}

#[tokio::test]
async fn deleting_a_tenant_destroys_its_data_key_so_copied_secrets_cannot_be_opened() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let tenant: TenantId = acme.id.parse().unwrap();
    let password = canary("shredded");
    put(&app, tenant, "ch", "password", &password);
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();
    // A "backup" of the secret row, taken before the deletion.
    let backup = first_blob(
        &app,
        &format!(
            "SELECT sealed AS b FROM secrets WHERE tenant_id = '{}'",
            acme.id
        ),
    );
    let res = app.delete_tenant(&acme.id).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = app.get("/v1/me", &acme.admin_token).await;
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "the tenant's tokens died with it"
    );
    expect_json(app.get("/v1/me", &other.admin_token).await, StatusCode::OK).await;

    // No data key of the tenant is left, so nothing opens the backup: not the tenant's key
    // (gone), not any key that remains.
    let fresh_vault = switchboard::vault::Vault::open(app.config().master_keys).unwrap();
    let err = store
        .run_blocking(|conn| tenant_keys::version(conn, &fresh_vault, tenant, 1))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err}");
    let other_id: TenantId = other.id.parse().unwrap();
    let remaining = store
        .run_blocking(|conn| tenant_keys::current(conn, &vault, other_id))
        .unwrap();
    let context = switchboard::vault::SealContext {
        tenant,
        record: "ch",
        field: "password",
    };
    assert!(
        remaining
            .open(&context, &switchboard::vault::Sealed::from_bytes(backup))
            .is_err()
    );

    let events = store.run_blocking(|conn| audit::list(conn, None)).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "tenant.deleted" && e.target.as_deref() == Some(acme.id.as_str()))
    );
}

#[tokio::test]
async fn on_sqlite_a_deleted_tenants_wrapped_key_is_overwritten_in_the_file() {
    let app = spawn_app().await;
    if app.db.is_postgres() {
        return; // PostgreSQL keeps dead tuples until VACUUM; docs/security.md says so.
    }
    let acme = app.create_tenant("Acme").await;
    let wrapped = first_blob(
        &app,
        &format!(
            "SELECT wrapped AS b FROM tenant_keys WHERE tenant_id = '{}'",
            acme.id
        ),
    );
    raw_sql(&app, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert!(
        contains(&database_contents(&app), &wrapped),
        "the key is in the file before deletion"
    );
    let res = app.delete_tenant(&acme.id).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    raw_sql(&app, "PRAGMA wal_checkpoint(TRUNCATE)");
    assert!(
        !contains(&database_contents(&app), &wrapped),
        "the deleted key lingers in the file"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_master_key_stops_the_start_and_names_the_key() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let original = app.master_keys.clone();
    let stopped = app.stop().await;

    let (err, stopped) = stopped
        .start_with_keys(&master_key("k2"))
        .await
        .err()
        .expect("refused");
    assert!(
        err.contains("`k1`") && err.contains("not configured"),
        "{err}"
    );
    assert!(
        !err.contains(original.split(':').nth(1).unwrap()),
        "key material in an error: {err}"
    );

    let (err, stopped) = stopped
        .start_with_keys(&master_key("k1"))
        .await
        .err()
        .expect("refused");
    assert!(err.contains("`k1`") && err.contains("not the key"), "{err}");

    let app = stopped
        .start_with_keys(&original)
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    expect_json(app.get("/v1/me", &acme.admin_token).await, StatusCode::OK).await;
}

#[tokio::test]
async fn rotating_the_master_key_while_the_api_is_busy_fails_nothing_and_retires_the_old_key() {
    let app = spawn_app().await;
    let old_key = app.master_keys.clone();
    let mut tenants = Vec::new();
    for i in 0..30 {
        let t = app.create_tenant(&format!("Tenant {i}")).await;
        let id: TenantId = t.id.parse().unwrap();
        put(&app, id, "ch", "password", &format!("secret-{i}"));
        tenants.push(t);
    }

    // The operator puts a new key first (active) and restarts; old data still opens.
    let new_key = master_key("k2");
    let both = format!("{new_key},{old_key}");
    let app = app
        .stop()
        .await
        .start_with_keys(&both)
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();

    // Traffic during the rotation: reads with existing tokens and new tenants.
    let client = app.client.clone();
    let address = app.address.clone();
    let operator = app.operator_token.clone();
    let tokens: Vec<String> = tenants.iter().map(|t| t.admin_token.clone()).collect();
    let traffic = tokio::spawn(async move {
        let mut failures = Vec::new();
        for round in 0..40 {
            let token = &tokens[round % tokens.len()];
            let res = client
                .get(format!("{address}/v1/me"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            if res.status() != StatusCode::OK {
                failures.push(format!("me: {}", res.status()));
            }
            let res = client
                .post(format!("{address}/v1/tenants"))
                .bearer_auth(&operator)
                .json(&serde_json::json!({"name": format!("During {round}"), "admin_email": format!("a{round}@during.test")}))
                .send()
                .await
                .unwrap();
            if res.status() != StatusCode::CREATED {
                failures.push(format!(
                    "create: {} {}",
                    res.status(),
                    res.text().await.unwrap()
                ));
            }
        }
        failures
    });
    let rotation = tokio::task::spawn_blocking(move || {
        let mut batches = 0;
        let rotation = rewrap_all(&store, &vault, 4, |_| batches += 1).unwrap();
        (rotation, batches)
    })
    .await
    .unwrap();
    let failures = traffic.await.unwrap();
    assert!(
        failures.is_empty(),
        "requests failed during rotation: {failures:?}"
    );
    let (rotation, batches) = rotation;
    assert_eq!(rotation.active, "k2");
    assert!(rotation.rewrapped >= 30, "{rotation:?}");
    assert!(batches >= 8, "rotation ran in batches: {batches}");

    let (store, _) = open_store_and_vault(&app.config()).unwrap();
    let usage = store.run_blocking(tenant_keys::usage).unwrap();
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0].0, "k2");
    let events = store.run_blocking(|conn| audit::list(conn, None)).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "key.rotated" && e.target.as_deref() == Some("k2"))
    );

    // Retire the old key: start with the new key only; every secret opens with it alone.
    let app = app
        .stop()
        .await
        .start_with_keys(&new_key)
        .await
        .unwrap_or_else(|(e, _)| panic!("{e}"));
    for (i, t) in tenants.iter().enumerate() {
        let id: TenantId = t.id.parse().unwrap();
        assert_eq!(
            open(&app, id, "ch", "password").unwrap().as_deref(),
            Some(format!("secret-{i}").as_str())
        );
    }
    expect_json(
        app.get("/v1/me", &tenants[0].admin_token).await,
        StatusCode::OK,
    )
    .await;
}

#[tokio::test]
async fn a_tenant_data_key_rotation_reseals_every_secret_of_that_tenant_only() {
    let app = spawn_app().await;
    let acme = app.create_tenant("Acme").await;
    let other = app.create_tenant("Other").await;
    let (a, o): (TenantId, TenantId) = (acme.id.parse().unwrap(), other.id.parse().unwrap());
    for i in 0..5 {
        put(
            &app,
            a,
            &format!("ch-{i}"),
            "password",
            &format!("acme-{i}"),
        );
    }
    put(&app, o, "ch", "password", "other");
    let (store, vault) = open_store_and_vault(&app.config()).unwrap();
    let rotation = store
        .run_blocking(|conn| tenant_keys::rotate_tenant(conn, &vault, a))
        .unwrap();
    assert_eq!(rotation.new_version, 2);
    assert_eq!(rotation.resealed, 5);
    assert_eq!(rotation.retired_versions, 1);
    for i in 0..5 {
        assert_eq!(
            open(&app, a, &format!("ch-{i}"), "password")
                .unwrap()
                .unwrap(),
            format!("acme-{i}")
        );
    }
    assert_eq!(open(&app, o, "ch", "password").unwrap().unwrap(), "other");
    let err = store
        .run_blocking(|conn| tenant_keys::version(conn, &vault, a, 1))
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    // New secrets use the new version.
    put(&app, a, "ch-new", "password", "fresh");
    assert_eq!(
        open(&app, a, "ch-new", "password").unwrap().unwrap(),
        "fresh"
    );
}

#[tokio::test]
async fn postgres_refuses_to_start_without_configured_master_keys() {
    let app = spawn_app().await;
    if !app.db.is_postgres() {
        return; // SQLite generates a key file instead (see binary.rs).
    }
    let mut config = app.config();
    config.master_keys = switchboard::vault::KeySource::Missing;
    let err = switchboard::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("SWITCHBOARD_MASTER_KEYS"), "{err}");
}
