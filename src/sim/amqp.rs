//! Transport of alert reports between push-to-rabbit and the processing stage.
//!
//! With a broker: publish to exchange `prisma` (topic, durable) with the alert routing
//! key, persistent, `application/json`, with publisher confirms; consume from a
//! server-named exclusive queue bound to the same key (the broker deletes it when the
//! simulator disconnects). Messages this simulator published carry
//! `app_id = volley-sim/<instance>` so the stage can tell them from others'.
//! Without a broker: the same messages go through an in-process channel.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::mpsc;

use super::alerts::AlertReport;
use super::config::{AlertsConfig, redact_url};
use super::error::SimError;

/// How long connecting and declaring may take before start-up fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Unacknowledged deliveries the consumer may hold.
const PREFETCH: u16 = 1000;

/// A report taken off the queue (or the in-memory channel).
pub struct Consumed {
    /// The message body.
    pub data: Vec<u8>,
    /// Whether this simulator published it.
    pub own: bool,
    /// When it was consumed.
    pub consumed_at: tokio::time::Instant,
    acker: Option<lapin::Acker>,
}

impl Consumed {
    /// Acknowledges the delivery (no-op in memory). An ack failure only means the
    /// broker will redeliver; nothing to report to a client.
    pub async fn ack(&self) {
        if let Some(acker) = &self.acker {
            let _ = acker.ack(BasicAckOptions::default()).await;
        }
    }
}

/// Where push-to-rabbit sends reports.
pub enum AlertSink {
    /// In-process channel straight to the processing stage.
    Memory(mpsc::UnboundedSender<Consumed>),
    /// A RabbitMQ connection.
    Broker(Box<BrokerLink>),
}

/// The broker connection and its publishing channel.
pub struct BrokerLink {
    connection: Connection,
    publish: Channel,
    exchange: String,
    routing_key: String,
    app_id: String,
    /// Redacted URL, for messages.
    pub url: String,
    /// Name of the processing stage's queue.
    pub queue: String,
}

impl AlertSink {
    /// An in-memory sink and the receiving end for the processing stage.
    pub fn memory() -> (AlertSink, mpsc::UnboundedReceiver<Consumed>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (AlertSink::Memory(tx), rx)
    }

    /// Connects, declares the exchange and the stage's queue, and starts consuming.
    pub async fn broker(
        url: &str,
        config: &AlertsConfig,
    ) -> Result<(AlertSink, mpsc::UnboundedReceiver<Consumed>), SimError> {
        let shown = redact_url(url);
        let connection = match tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(url, ConnectionProperties::default()),
        )
        .await
        {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                return Err(SimError::BrokerConnect { url: shown, cause: e.to_string() });
            }
            Err(_) => {
                return Err(SimError::BrokerConnect {
                    url: shown,
                    cause: format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                });
            }
        };
        let setup = |step: &str| {
            let url = shown.clone();
            let step = step.to_string();
            move |e: lapin::Error| SimError::BrokerSetup { url, step, cause: e.to_string() }
        };
        let publish = connection.create_channel().await.map_err(setup("channel.open"))?;
        publish
            .exchange_declare(
                config.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(setup(&format!("exchange.declare {} (topic, durable)", config.exchange)))?;
        publish.confirm_select(ConfirmSelectOptions::default()).await.map_err(setup("confirm.select"))?;
        let consume = connection.create_channel().await.map_err(setup("channel.open"))?;
        let queue = consume
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(setup("queue.declare (exclusive)"))?;
        let queue_name = queue.name().as_str().to_string();
        consume
            .queue_bind(
                queue_name.as_str().into(),
                config.exchange.as_str().into(),
                config.routing_key.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(setup(&format!("queue.bind {} -> {}", config.routing_key, config.exchange)))?;
        consume.basic_qos(PREFETCH, BasicQosOptions::default()).await.map_err(setup("basic.qos"))?;
        let mut consumer = consume
            .basic_consume(
                queue_name.as_str().into(),
                "volley-sim".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(setup("basic.consume"))?;
        let app_id = format!("volley-sim/{}", uuid::Uuid::new_v4());
        let (tx, rx) = mpsc::unbounded_channel();
        let own_id = app_id.clone();
        tokio::spawn(async move {
            // Ends when the connection closes (shutdown) or the consumer is cancelled.
            while let Some(Ok(delivery)) = consumer.next().await {
                let own = delivery.properties.app_id().as_ref().is_some_and(|a| a.as_str() == own_id);
                let msg = Consumed {
                    own,
                    consumed_at: tokio::time::Instant::now(),
                    acker: Some(delivery.acker),
                    data: delivery.data,
                };
                if tx.send(msg).is_err() {
                    break;
                }
            }
        });
        let link = BrokerLink {
            connection,
            publish,
            exchange: config.exchange.clone(),
            routing_key: config.routing_key.clone(),
            app_id,
            url: shown,
            queue: queue_name,
        };
        Ok((AlertSink::Broker(Box::new(link)), rx))
    }

    /// Publishes one report; with a broker, waits for the publisher confirm.
    pub async fn publish(&self, report: &AlertReport) -> Result<(), String> {
        let data = serde_json::to_vec(report).map_err(|e| e.to_string())?;
        match self {
            AlertSink::Memory(tx) => tx
                .send(Consumed { data, own: true, consumed_at: tokio::time::Instant::now(), acker: None })
                .map_err(|_| "the processing stage has stopped".to_string()),
            AlertSink::Broker(link) => {
                let props = BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2)
                    .with_app_id(link.app_id.as_str().into())
                    .with_message_id(report.alert_id.as_str().into());
                let confirm = link
                    .publish
                    .basic_publish(
                        link.exchange.as_str().into(),
                        link.routing_key.as_str().into(),
                        BasicPublishOptions::default(),
                        &data,
                        props,
                    )
                    .await
                    .map_err(|e| format!("publish to {}: {e}", link.url))?;
                let confirmation = confirm.await.map_err(|e| format!("publish confirm from {}: {e}", link.url))?;
                if confirmation.is_nack() {
                    return Err(format!("broker {} refused (nack) the message", link.url));
                }
                Ok(())
            }
        }
    }

    /// "memory" or "amqp".
    pub fn kind(&self) -> &'static str {
        match self {
            AlertSink::Memory(_) => "memory",
            AlertSink::Broker(_) => "amqp",
        }
    }

    /// The processing stage's queue on the broker.
    pub fn queue(&self) -> Option<&str> {
        match self {
            AlertSink::Memory(_) => None,
            AlertSink::Broker(link) => Some(&link.queue),
        }
    }

    /// Closes the broker connection (deleting the stage's exclusive queue).
    pub async fn close(&self) {
        if let AlertSink::Broker(link) = self {
            let _ =
                tokio::time::timeout(Duration::from_secs(2), link.connection.close(200, "volley sim stopping".into()))
                    .await;
        }
    }
}
