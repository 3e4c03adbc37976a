//! Live events, published only after the rows they describe are committed.

use horsestream_proto::Event;

use crate::SinkError;
use crate::kafka::TopicProducer;

/// Where live events go: the events topic, or a channel inside the demo process.
#[derive(Debug, Clone)]
pub enum EventPublisher {
    Kafka(TopicProducer),
    Channel(crossbeam_channel::Sender<Event>),
}

impl EventPublisher {
    /// Publishes an event keyed by its stream, so one stream's events stay in order.
    pub async fn publish(&self, stream_id: &str, event: &Event) -> Result<(), SinkError> {
        match self {
            EventPublisher::Kafka(p) => p.send(stream_id, &event.encode_to_vec()).await.map(|_| ()),
            EventPublisher::Channel(tx) => {
                tx.send(event.clone()).map_err(|_| SinkError::ChannelClosed)
            }
        }
    }
}
