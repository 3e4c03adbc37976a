//! The chunks topic against the real broker: a chunk of a long file ingested faster than real
//! time carries a capture timestamp hours ahead of the broker's clock, and must be accepted.

use horsestream_sinks::kafka::{KafkaConfig, TopicProducer, ensure_topics};

#[tokio::test]
async fn chunks_with_capture_times_hours_ahead_are_accepted() {
    let brokers = std::env::var("HORSESTREAM_KAFKA_BROKERS").expect(
        "HORSESTREAM_KAFKA_BROKERS is not set: run scripts/services.sh start and eval its env",
    );
    let name = format!(
        "topics-{}-{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let mut k = KafkaConfig::new(brokers);
    k.chunks_topic = format!("{name}.chunks");
    k.events_topic = format!("{name}.events");
    ensure_topics(&k).await.unwrap();
    // Creating them again is fine.
    ensure_topics(&k).await.unwrap();
    let producer = TopicProducer::new(&k, &k.chunks_topic).unwrap();
    let three_hours_ahead = chrono::Utc::now().timestamp_millis() + 3 * 3600 * 1000;
    producer
        .send_at("stream", b"chunk", three_hours_ahead)
        .await
        .expect("a chunk timestamped 3 h ahead is accepted");
}
