//! The behaviour every `Store` backend must show. Backends call `run` from
//! their tests; a replicated backend runs the same checks.

mod quarantine;

pub use quarantine::sample_record;

use super::{EntryState, QueueEntry, RcptStatus, Recipient, Store, StoreError};

pub fn sample_entry(id: &str) -> QueueEntry {
    QueueEntry {
        id: id.to_string(),
        received_at: 1_700_000_000,
        client_ip: "192.0.2.1".into(),
        helo: "client.test".into(),
        tls: false,
        sender: Some("a@sender.test".into()),
        recipients: vec![Recipient { address: "b@example.test".into(), status: RcptStatus::Pending, last_reply: None }],
        size: 5,
        smtputf8: false,
        eight_bit: false,
        is_bounce: false,
        state: EntryState::Queued,
        attempts: 0,
        next_attempt: 0,
        last_error: None,
        verdict: None,
        after_scan: crate::store::AfterScan::None,
    }
}

/// Runs every check against an empty store.
pub async fn run(store: &dyn Store) {
    round_trip(store).await;
    update_keeps_body(store).await;
    remove_forgets(store).await;
    missing_ids(store).await;
    many_concurrent(store).await;
    remove_wins_over_a_concurrent_update(store).await;
    quarantine::run(store).await;
}

/// A delete racing a delivery's status update: the message stays deleted.
async fn remove_wins_over_a_concurrent_update(store: &dyn Store) {
    for i in 0..50 {
        let id = format!("race{i}");
        store.enqueue(sample_entry(&id), b"x\r\n".to_vec()).await.unwrap();
        let (removed, updated) = (store.remove(&id), store.update(sample_entry(&id)));
        removed.await.unwrap();
        let _ = updated.await;
        assert_eq!(store.get(&id).await.unwrap(), None, "{id} came back");
    }
}

async fn round_trip(store: &dyn Store) {
    let body = b"Subject: x\r\n\r\nhello\r\n".to_vec();
    store.enqueue(sample_entry("rt1"), body.clone()).await.unwrap();
    assert_eq!(store.get("rt1").await.unwrap(), Some(sample_entry("rt1")));
    assert_eq!(store.body("rt1").await.unwrap(), body);
    assert!(store.list().await.unwrap().iter().any(|e| e.id == "rt1"));
    store.remove("rt1").await.unwrap();
}

async fn update_keeps_body(store: &dyn Store) {
    store.enqueue(sample_entry("up1"), b"body\r\n".to_vec()).await.unwrap();
    let mut e = sample_entry("up1");
    e.attempts = 3;
    e.last_error = Some("451 4.3.0 later".into());
    store.update(e.clone()).await.unwrap();
    assert_eq!(store.get("up1").await.unwrap(), Some(e));
    assert_eq!(store.body("up1").await.unwrap(), b"body\r\n");
    store.remove("up1").await.unwrap();
}

async fn remove_forgets(store: &dyn Store) {
    store.enqueue(sample_entry("rm1"), b"x\r\n".to_vec()).await.unwrap();
    store.remove("rm1").await.unwrap();
    assert_eq!(store.get("rm1").await.unwrap(), None);
    assert!(matches!(store.body("rm1").await, Err(StoreError::NotFound(_))));
    assert!(!store.list().await.unwrap().iter().any(|e| e.id == "rm1"));
}

async fn missing_ids(store: &dyn Store) {
    assert!(matches!(store.remove("nope").await, Err(StoreError::NotFound(_))));
    assert!(matches!(store.update(sample_entry("nope")).await, Err(StoreError::NotFound(_))));
}

async fn many_concurrent(store: &dyn Store) {
    let writes = (0..200).map(|i| {
        let body = format!("Subject: {i}\r\n\r\n{}\r\n", "x".repeat(i * 10)).into_bytes();
        store.enqueue(sample_entry(&format!("c{i}")), body)
    });
    for r in join_all(writes.collect()).await {
        r.unwrap();
    }
    for i in 0..200 {
        let body = store.body(&format!("c{i}")).await.unwrap();
        assert!(body.starts_with(format!("Subject: {i}\r\n").as_bytes()));
        store.remove(&format!("c{i}")).await.unwrap();
    }
    assert!(store.list().await.unwrap().is_empty());
}

/// Polls every future at once, so the backend sees concurrent writers.
pub(crate) async fn join_all<T>(futs: Vec<super::BoxFut<'_, T>>) -> Vec<T> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    struct JoinAll<'a, T> {
        futs: Vec<Option<super::BoxFut<'a, T>>>,
        out: Vec<Option<T>>,
    }
    impl<T> Unpin for JoinAll<'_, T> {}
    impl<T> Future for JoinAll<'_, T> {
        type Output = Vec<T>;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Vec<T>> {
            let this = &mut *self;
            let mut pending = false;
            for (i, slot) in this.futs.iter_mut().enumerate() {
                if let Some(f) = slot {
                    match f.as_mut().poll(cx) {
                        Poll::Ready(v) => {
                            this.out[i] = Some(v);
                            *slot = None;
                        }
                        Poll::Pending => pending = true,
                    }
                }
            }
            match pending {
                true => Poll::Pending,
                false => Poll::Ready(this.out.iter_mut().map(|o| o.take().unwrap()).collect()),
            }
        }
    }
    let n = futs.len();
    JoinAll { futs: futs.into_iter().map(Some).collect(), out: (0..n).map(|_| None).collect() }.await
}
