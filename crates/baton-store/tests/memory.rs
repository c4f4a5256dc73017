//! Vectors beside the rows they describe, on a real SQLite file with sqlite-vec: which
//! rows need one, nearest rows by cosine distance, and vectors that go with their row.

use baton_core::Role;
use baton_store::{NewCapture, NewMessage, PendingText, Store};

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

#[tokio::test]
async fn vectors_are_found_by_distance_and_go_with_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let session = store.create_session("notes").await.unwrap();
    let mut ids = Vec::new();
    for text in ["dentist on tuesday", "buy winter tyres", "call mum"] {
        let m = store
            .append_message(&session.id, NewMessage::new(Role::User, text))
            .await
            .unwrap();
        ids.push(m.id);
    }
    let capture = store
        .add_capture(&NewCapture {
            source: "region".into(),
            width: 10,
            height: 10,
            image_path: None,
            text: "Invoice 42 due Friday".into(),
            words: serde_json::json!([]),
            elements: serde_json::json!([]),
        })
        .await
        .unwrap();
    let pending = store.pending_embeddings("m", 100).await.unwrap();
    assert_eq!(pending.len(), 4);
    assert_eq!(store.embedding_counts("m").await.unwrap().total, 4);
    let vector = |text: &str| match text {
        "dentist on tuesday" => unit(&[1.0, 0.0, 0.0]),
        "buy winter tyres" => unit(&[0.0, 1.0, 0.0]),
        "call mum" => unit(&[0.0, 0.0, 1.0]),
        _ => unit(&[1.0, 1.0, 0.0]),
    };
    let items: Vec<(PendingText, Vec<f32>)> = pending
        .into_iter()
        .map(|p| {
            let v = vector(&p.text);
            (p, v)
        })
        .collect();
    assert_eq!(store.save_embeddings("m", &items).await.unwrap(), 4);
    assert!(store.pending_embeddings("m", 100).await.unwrap().is_empty());
    // A second model has everything still to do.
    assert_eq!(
        store.pending_embeddings("other", 100).await.unwrap().len(),
        4
    );

    let near = store
        .nearest("m", &unit(&[0.9, 0.1, 0.0]), None, 2)
        .await
        .unwrap();
    assert_eq!((near[0].kind.as_str(), near[0].ref_id), ("message", ids[0]));
    assert_eq!(
        (near[1].kind.as_str(), near[1].ref_id),
        ("capture", capture.id)
    );
    assert!(near[0].distance < near[1].distance);
    let only = store
        .nearest("m", &unit(&[1.0, 1.0, 0.0]), Some("message"), 10)
        .await
        .unwrap();
    assert_eq!(only.len(), 3);

    // A deleted capture takes its vector with it; so does a deleted session's message.
    store.delete_capture(capture.id).await.unwrap();
    store.delete_session(&session.id).await.unwrap();
    assert_eq!(store.embedding_counts("m").await.unwrap().embedded, 0);
    // A vector for a text that changed or went away meanwhile is not stored.
    let gone = PendingText {
        kind: "message".into(),
        ref_id: ids[1],
        text: "buy winter tyres".into(),
    };
    assert_eq!(
        store
            .save_embeddings("m", &[(gone, unit(&[1.0, 0.0, 0.0]))])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.integrity_check().await.unwrap(), ["ok"]);
}
