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

fn chunks(texts: &[&str]) -> baton_store::DocContent {
    baton_store::DocContent::Indexed {
        hash: texts.join("|"),
        chars: texts.iter().map(|t| t.len() as i64).sum(),
        chunks: texts.iter().map(|t| t.to_string()).collect(),
    }
}

fn file(path: &str, content: baton_store::DocContent) -> baton_store::DocFile {
    baton_store::DocFile {
        path: path.into(),
        format: "text".into(),
        size: 10,
        modified_ms: 1,
        content,
    }
}

#[tokio::test]
async fn document_chunks_are_searched_embedded_replaced_and_removed_with_their_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let root = store.add_doc_root("/docs").await.unwrap();
    assert_eq!(
        store.add_doc_root("/docs").await.unwrap().id,
        root.id,
        "added once"
    );
    store
        .save_document(
            root.id,
            &file(
                "/docs/a.txt",
                chunks(&["the boiler service is booked", "the cat eats at six"]),
            ),
        )
        .await
        .unwrap();
    store
        .save_document(
            root.id,
            &file(
                "/docs/b.bin",
                baton_store::DocContent::Skipped("binary".into()),
            ),
        )
        .await
        .unwrap();
    let r = store.doc_root("/docs").await.unwrap().unwrap();
    assert_eq!((r.indexed, r.skipped, r.chunks), (1, 1, 2));
    let docs = store.documents(root.id).await.unwrap();
    assert_eq!(docs[1].reason.as_deref(), Some("binary"));

    // Found by words, with the file's name as the title.
    let hits = store.words_ranked("boiler", None, 10).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].kind, "chunk");
    let items = store
        .memory_items(&[(hits[0].kind.clone(), hits[0].ref_id)])
        .await
        .unwrap();
    assert_eq!(items[0].title, "a.txt");
    assert_eq!(items[0].location.as_deref(), Some("/docs/a.txt"));

    // Embedded like any text.
    let pending = store.pending_embeddings("m", 100).await.unwrap();
    assert_eq!(pending.len(), 2);
    let items: Vec<_> = pending
        .into_iter()
        .map(|p| (p, unit(&[1.0, 0.0])))
        .collect();
    assert_eq!(store.save_embeddings("m", &items).await.unwrap(), 2);

    // Saving the same text again keeps chunks and vectors; new text replaces both.
    store
        .save_document(
            root.id,
            &file(
                "/docs/a.txt",
                chunks(&["the boiler service is booked", "the cat eats at six"]),
            ),
        )
        .await
        .unwrap();
    assert_eq!(store.embedding_counts("m").await.unwrap().embedded, 2);
    store
        .save_document(
            root.id,
            &file("/docs/a.txt", chunks(&["the boiler was fixed"])),
        )
        .await
        .unwrap();
    let counts = store.embedding_counts("m").await.unwrap();
    assert_eq!(
        (counts.embedded, counts.total),
        (0, 1),
        "old vectors went with old chunks"
    );
    assert!(store
        .words_ranked("cat", None, 10)
        .await
        .unwrap()
        .is_empty());

    // A file that is gone, then the whole root, take their chunks and vectors.
    let pending = store.pending_embeddings("m", 100).await.unwrap();
    let items: Vec<_> = pending
        .into_iter()
        .map(|p| (p, unit(&[1.0, 0.0])))
        .collect();
    store.save_embeddings("m", &items).await.unwrap();
    assert!(store.remove_document("/docs/a.txt").await.unwrap());
    assert_eq!(
        store.embedding_counts("m").await.unwrap(),
        baton_store::EmbeddingCounts {
            embedded: 0,
            total: 0
        }
    );
    store
        .save_document(
            root.id,
            &file("/docs/c.txt", chunks(&["kept until the root goes"])),
        )
        .await
        .unwrap();
    assert!(store.remove_doc_root(root.id).await.unwrap());
    assert!(store.doc_roots().await.unwrap().is_empty());
    assert!(store
        .words_ranked("kept", None, 10)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn task_outputs_are_memory_once_they_succeed() {
    use baton_store::TaskQueue as _;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let task = baton_store::NewTask {
        step: "summary".into(),
        kind: "chat".into(),
        input: serde_json::json!({}),
        resource: "none".into(),
        memory_mb: 0,
        priority: 0,
        deadline_ms: None,
        max_attempts: 1,
        backoff_ms: 0,
        timeout_ms: None,
        after: vec![],
    };
    let (_, ids) = store
        .create_run(&baton_store::NewRun {
            name: "t".into(),
            template: None,
            params: serde_json::json!({}),
            origin: "test".into(),
            tasks: vec![task],
        })
        .await
        .unwrap();
    assert!(store
        .words_ranked("quarterly", None, 10)
        .await
        .unwrap()
        .is_empty());
    store
        .claim_task(&ids[0], "w", 10_000)
        .await
        .unwrap()
        .unwrap();
    store
        .complete_task(
            &ids[0],
            "w",
            &serde_json::json!({"text": "The quarterly figures rose by nine percent."}),
        )
        .await
        .unwrap();
    let hits = store
        .words_ranked("quarterly", Some("task"), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    let items = store
        .memory_items(&[("task".into(), hits[0].ref_id)])
        .await
        .unwrap();
    assert_eq!(items[0].title, "task summary (chat)");
    assert_eq!(items[0].location.as_deref(), Some(ids[0].as_str()));
    let pending = store.pending_embeddings("m", 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].text,
        "The quarterly figures rose by nine percent."
    );
    let items: Vec<_> = pending
        .into_iter()
        .map(|p| (p, unit(&[0.0, 1.0])))
        .collect();
    assert_eq!(store.save_embeddings("m", &items).await.unwrap(), 1);
    assert_eq!(
        store.embedding_counts("m").await.unwrap(),
        baton_store::EmbeddingCounts {
            embedded: 1,
            total: 1
        }
    );
}
