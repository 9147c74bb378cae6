//! The storage trait's conformance suite on the embedded backend, plus what
//! only a disk backend shows: reopening and spool cleanup.

use mxgate::store::conformance::{self, sample_entry};
use mxgate::store::{EmbeddedStore, Store};

#[tokio::test]
async fn embedded_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    conformance::run(&store).await;
    store.close().await.unwrap();
}

#[tokio::test]
async fn records_and_bodies_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.enqueue(sample_entry("keep"), b"kept body\r\n".to_vec()).await.unwrap();
        store.enqueue(sample_entry("gone"), b"gone body\r\n".to_vec()).await.unwrap();
        store.remove("gone").await.unwrap();
        store.close().await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.body("keep").await.unwrap(), b"kept body\r\n");
    assert_eq!(store.get("gone").await.unwrap(), None);
    assert_eq!(store.list().await.unwrap().len(), 1);
    store.close().await.unwrap();
}

#[tokio::test]
async fn emptied_spool_segments_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let segments = |d: &std::path::Path| std::fs::read_dir(d.join("spool")).unwrap().count();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.enqueue(sample_entry("a"), vec![b'x'; 1000]).await.unwrap();
        store.remove("a").await.unwrap();
        store.close().await.unwrap();
    }
    // The old segment held only finished messages: reopening drops it.
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(segments(dir.path()), 1, "only the new, current segment remains");
    store.close().await.unwrap();
}

#[tokio::test]
async fn writes_after_close_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.close().await.unwrap();
    assert!(store.enqueue(sample_entry("late"), b"x".to_vec()).await.is_err());
}

#[tokio::test]
async fn a_body_damaged_on_disk_is_reported_not_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    store.enqueue(sample_entry("dmg"), b"Subject: x\r\n\r\nintact body\r\n".to_vec()).await.unwrap();
    // Flip a byte of the body inside its spool segment.
    let seg = std::fs::read_dir(dir.path().join("spool")).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = bytes.windows(6).position(|w| w == b"intact").unwrap();
    bytes[at] = b'X';
    std::fs::write(&seg, bytes).unwrap();
    assert!(matches!(store.body("dmg").await, Err(mxgate::store::StoreError::Corrupt(..))));
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_record_torn_by_a_crash_is_dropped_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        store.enqueue(sample_entry("whole"), vec![b'w'; 500]).await.unwrap();
        store.enqueue(sample_entry("torn"), vec![b't'; 500]).await.unwrap();
        store.close().await.unwrap();
    }
    // As if the crash came after the index write but before the spool sync.
    let seg = std::fs::read_dir(dir.path().join("spool")).unwrap().next().unwrap().unwrap().path();
    let len = std::fs::metadata(&seg).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 100).unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.get("torn").await.unwrap(), None);
    assert_eq!(store.body("whole").await.unwrap(), vec![b'w'; 500]);
    store.close().await.unwrap();
}

#[tokio::test]
async fn quarantine_records_statuses_and_the_search_index_survive_a_reopen() {
    use mxgate::store::conformance::sample_record;
    use mxgate::store::{Actor, AuditEntry, QFilter, QPage, QStatus};
    let dir = tempfile::tempdir().unwrap();
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        for i in 0..3 {
            store
                .quarantine(sample_record(&format!("q{i}"), 100 + i), format!("body {i}\r\n").into_bytes())
                .await
                .unwrap();
        }
        let audit =
            AuditEntry { at: 1, by: "t".into(), action: "delete".into(), id: "q1".into(), detail: String::new() };
        store.q_change("q1", QStatus::Deleted, Actor { by: "t".into(), at: 1 }, audit).await.unwrap();
        store.close().await.unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.q_body("q2").await.unwrap(), b"body 2\r\n");
    let held = QFilter { status: Some(QStatus::Held), ..QFilter::default() };
    let found: Vec<String> =
        store.q_search(held, QPage::default()).await.unwrap().items.into_iter().map(|r| r.id).collect();
    assert_eq!(found, ["q2", "q0"]);
    assert_eq!(store.q_get("q1").await.unwrap().unwrap().status, QStatus::Deleted);
    assert_eq!(store.audit_list(10).await.unwrap().len(), 1);
    store.close().await.unwrap();
}
