//! Loading the directory from storage: responsible users become extensions, last agents come
//! from answered calls, and the storage source answers misses.

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use directory::from_storage::{full_load, StorageSource, UserExtensions};
use directory::phone::E164;
use directory::{Directory, LookupSource, Resolved};
use storage::{CustomerPhone, CustomerUpsert, NewUser, Role, Storage};

async fn seeded() -> Storage {
    let storage = Storage::open_in_memory()
        .await
        .expect("in-memory database opens");
    storage.migrate().await.expect("migrations run");
    let now = Utc
        .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("valid time");
    let manager = storage
        .create_user(
            &NewUser {
                login: "anna".into(),
                display_name: "Анна".into(),
                role: Role::Agent,
                password_hash: None,
                extensions: vec!["105".into()],
                queues: vec![],
            },
            now,
        )
        .await
        .expect("user is created");
    for (i, name) in ["Иван Петров", "ООО Ромашка"].iter().enumerate() {
        storage
            .upsert_customer(
                &CustomerUpsert {
                    name: (*name).into(),
                    responsible_user_id: Some(manager),
                    segment: Some("vip".into()),
                    debtor: i == 1,
                    phones: vec![CustomerPhone {
                        phone_e164: format!("+7916123456{i}"),
                        phone_raw: None,
                        kind: None,
                    }],
                    ..CustomerUpsert::default()
                },
                now,
            )
            .await
            .expect("customer is stored");
    }
    storage
}

#[tokio::test]
async fn full_load_and_storage_source() {
    let storage = seeded().await;
    let index = full_load(&storage, 30).await.expect("directory loads");
    assert_eq!(index.stats().customers, 2);
    let first = index
        .get(E164::parse("+79161234560").expect("valid"))
        .expect("customer is cached");
    assert_eq!(first.name, "Иван Петров");
    assert_eq!(first.responsible.as_ref().map(|e| e.as_str()), Some("105"));
    assert_eq!(first.segment.as_deref(), Some("vip"));

    let users = Arc::new(UserExtensions::load(&storage).await.expect("users load"));
    let source = StorageSource::new(storage.clone(), users);
    let found = source
        .lookup(E164::parse("+79161234561").expect("valid"))
        .await
        .expect("lookup works")
        .expect("customer exists");
    assert!(found.debtor);
    let directory = Directory::new(Some(Arc::new(source)));
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(300);
    let missing = directory
        .resolve(E164::parse("+79990000000").expect("valid"), deadline)
        .await;
    assert_eq!(missing, Resolved::NotFound);
}
