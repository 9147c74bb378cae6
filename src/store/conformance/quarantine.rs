//! The quarantine half of the conformance suite: the status lattice,
//! exactly-once release (also under concurrency), expiry with a chosen
//! clock, search, the audit log and the allow list.

use super::join_all;
use crate::pipeline::{Action, Symbol};
use crate::store::{Actor, AllowEntry, AuditEntry, Changed, QFilter, QPage, QRecord, QStatus, Store, StoreError};

pub fn sample_record(id: &str, received_at: u64) -> QRecord {
    QRecord {
        id: id.into(),
        received_at,
        client_ip: "192.0.2.1".into(),
        helo: "client.test".into(),
        tls: false,
        sender: Some("a@sender.test".into()),
        recipients: vec!["b@example.test".into()],
        smtputf8: false,
        eight_bit: false,
        from: "A <a@sender.test>".into(),
        to: "b@example.test".into(),
        subject: format!("subject {id}"),
        date: String::new(),
        message_id: format!("{id}@sender.test"),
        size: 20,
        action: Action::Quarantine,
        score: 0.0,
        symbols: vec![Symbol::new("ATTACHMENT_EXECUTABLE", 0.0, "x.exe is a program")],
        reason: "ATTACHMENT_EXECUTABLE: x.exe is a program".into(),
        status: QStatus::Held,
        expires_at: received_at + 100,
        changed: None,
        has_body: true,
    }
}

fn who(action: &str, id: &str) -> (Actor, AuditEntry) {
    let actor = Actor { by: "tester".into(), at: 1 };
    let audit = AuditEntry { at: 1, by: "tester".into(), action: action.into(), id: id.into(), detail: String::new() };
    (actor, audit)
}

fn release<'a>(store: &'a dyn Store, id: &str) -> crate::store::BoxFut<'a, Result<Option<Changed>, StoreError>> {
    let (actor, audit) = who("release", id);
    let make = Box::new(|rec: &QRecord| {
        let mut e = super::sample_entry(&rec.id);
        e.recipients[0].address = rec.recipients[0].clone();
        (e, b"X-Released: yes\r\n".to_vec())
    });
    store.q_release(id, actor, audit, make)
}

async fn change(store: &dyn Store, id: &str, to: QStatus) -> Option<Changed> {
    let (actor, audit) = who(to.as_str(), id);
    store.q_change(id, to, actor, audit).await.unwrap()
}

fn status(c: Option<Changed>) -> (bool, QStatus) {
    match c.expect("record exists") {
        Changed::Done(r) => (true, r.status),
        Changed::Refused(r) => (false, r.status),
    }
}

pub async fn run(store: &dyn Store) {
    release_once(store).await;
    concurrent_releases(store).await;
    lattice(store).await;
    expiry(store).await;
    search(store).await;
    audit_allow_meta(store).await;
}

async fn release_once(store: &dyn Store) {
    store.quarantine(sample_record("q1", 1000), b"Subject: q1\r\n\r\nbody\r\n".to_vec()).await.unwrap();
    assert_eq!(store.q_get("q1").await.unwrap(), Some(sample_record("q1", 1000)));
    assert_eq!(store.q_body("q1").await.unwrap(), b"Subject: q1\r\n\r\nbody\r\n");
    assert_eq!(store.get("q1").await.unwrap(), None, "held messages are not queued");
    assert_eq!(status(release(store, "q1").await.unwrap()), (true, QStatus::Released));
    assert_eq!(store.body("q1").await.unwrap(), b"X-Released: yes\r\nSubject: q1\r\n\r\nbody\r\n");
    assert_eq!(status(release(store, "q1").await.unwrap()), (false, QStatus::Released));
    assert!(release(store, "nope").await.unwrap().is_none());
    store.remove("q1").await.unwrap();
}

async fn concurrent_releases(store: &dyn Store) {
    store.quarantine(sample_record("q2", 1000), b"x\r\n".to_vec()).await.unwrap();
    let results = join_all((0..20).map(|_| release(store, "q2")).collect()).await;
    let done = results.into_iter().filter(|r| matches!(r, Ok(Some(Changed::Done(_))))).count();
    assert_eq!(done, 1, "exactly one of 20 concurrent releases wins");
    store.remove("q2").await.unwrap();
}

async fn lattice(store: &dyn Store) {
    store.quarantine(sample_record("q3", 1000), b"x\r\n".to_vec()).await.unwrap();
    assert_eq!(status(change(store, "q3", QStatus::Deleted).await), (true, QStatus::Deleted));
    assert!(matches!(store.q_body("q3").await, Err(StoreError::NotFound(_))));
    for to in [QStatus::Held, QStatus::Released, QStatus::Expired, QStatus::Deleted] {
        assert_eq!(status(change(store, "q3", to).await), (false, QStatus::Deleted), "deleted is final");
    }
    assert_eq!(status(release(store, "q3").await.unwrap()), (false, QStatus::Deleted));
    assert!(change(store, "nope", QStatus::Deleted).await.is_none());
}

async fn expiry(store: &dyn Store) {
    for i in 0..5 {
        store.quarantine(sample_record(&format!("e{i}"), 5000 + i), b"x\r\n".to_vec()).await.unwrap();
    }
    release(store, "e0").await.unwrap();
    store.remove("e0").await.unwrap();
    // The clock is the caller's. Due first: the bodies of q1 and q2 (released
    // earlier, expiring at 1100); q3 was deleted and has none.
    assert_eq!(store.q_expire(4999, 10).await.unwrap(), 2);
    assert_eq!(store.q_get("q1").await.unwrap().map(|r| (r.status, r.has_body)), Some((QStatus::Released, false)));
    // Nothing else is due before its expires_at.
    assert_eq!(store.q_expire(5099, 10).await.unwrap(), 0);
    // Bounded per run, resumable: 3 now, the other 2 on the next run.
    assert_eq!(store.q_expire(6000, 3).await.unwrap(), 3);
    assert_eq!(store.q_expire(6000, 3).await.unwrap(), 2);
    assert_eq!(store.q_expire(6000, 3).await.unwrap(), 0);
    let e0 = store.q_get("e0").await.unwrap().unwrap();
    assert_eq!((e0.status, e0.has_body), (QStatus::Released, false), "a released record stays released");
    for i in 1..5 {
        let r = store.q_get(&format!("e{i}")).await.unwrap().unwrap();
        assert_eq!((r.status, r.has_body), (QStatus::Expired, false));
        assert!(matches!(store.q_body(&r.id).await, Err(StoreError::NotFound(_))));
    }
}

async fn search(store: &dyn Store) {
    for i in 0..7u64 {
        let mut r = sample_record(&format!("s{i}"), 9000 + i);
        r.recipients = vec![if i % 2 == 0 { "even@example.test" } else { "odd@other.test" }.into()];
        store.quarantine(r, b"x\r\n".to_vec()).await.unwrap();
    }
    let even = QFilter { recipient: Some("EVEN@example.test".into()), since: Some(9000), ..QFilter::default() };
    let ids = |r: crate::store::QResults| r.items.into_iter().map(|x| x.id).collect::<Vec<_>>();
    let first = store.q_search(even.clone(), QPage { limit: 3, ..QPage::default() }).await.unwrap();
    let next = first.next.clone().expect("a second page");
    assert_eq!(ids(first), ["s6", "s4", "s2"]);
    let second = store.q_search(even, QPage { limit: 3, after: Some(next), oldest_first: false }).await.unwrap();
    assert_eq!((second.next.clone(), ids(second)), (None, vec!["s0".to_string()]));
    let other = QFilter { domain: Some("other.test".into()), until: Some(9004), ..QFilter::default() };
    assert_eq!(ids(store.q_search(other, QPage::default()).await.unwrap()), ["s3", "s1"]);
}

async fn audit_allow_meta(store: &dyn Store) {
    let mark = AuditEntry { at: 7, by: "t".into(), action: "login".into(), id: String::new(), detail: "ok".into() };
    store.audit(mark.clone()).await.unwrap();
    assert_eq!(store.audit_list(1).await.unwrap(), vec![mark.clone()], "newest first");
    let entry = AllowEntry { sender: "a@sender.test".into(), scope: "*".into() };
    store.allow_set(entry.clone(), false, mark.clone()).await.unwrap();
    assert_eq!(store.allow_list().await.unwrap(), vec![entry.clone()]);
    store.allow_set(entry, true, mark).await.unwrap();
    assert!(store.allow_list().await.unwrap().is_empty());
    assert_eq!(store.meta_get("k").await.unwrap(), None);
    store.meta_put("k", b"v".to_vec()).await.unwrap();
    assert_eq!(store.meta_get("k").await.unwrap(), Some(b"v".to_vec()));
}
