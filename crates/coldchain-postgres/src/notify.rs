//! Tip updates from other writers: `LISTEN coldchain_tip` on a dedicated
//! connection, with a polling fallback.
//!
//! Every committed append, truncate and drain sends `NOTIFY coldchain_tip`
//! inside its transaction, so a listener hears about it when (and only when)
//! it commits, in commit order. The listener task publishes the tip into a
//! `watch` channel ([`coldchain::ColdRead::tip_updates`]):
//!
//! - on each notification, from its payload (no query);
//! - every `tip_poll_interval` (default 1 s), by reading `coldchain.meta`,
//!   so that a lost notification or a dropped connection delays an update
//!   by at most that interval;
//! - while the listen connection is down, by polling through the pool, and
//!   reconnecting with a backoff capped at the same interval.
//!
//! The task starts on the first `tip_updates` call and ends when the last
//! clone of the backend is dropped.

use alloy::eips::BlockNumHash;
use deadpool_postgres::Pool;
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};
use tokio_util::sync::CancellationToken;

use crate::write::{TIP_CHANNEL, parse_tip_payload};

/// What the listener task needs (no handle on the backend itself, so the
/// backend can be dropped while the task runs).
pub(crate) struct Listener {
    pub(crate) config: Config,
    pub(crate) pool: Pool,
    pub(crate) poll: Duration,
    pub(crate) stop: CancellationToken,
    pub(crate) tx: watch::Sender<Option<BlockNumHash>>,
}

fn publish(tx: &watch::Sender<Option<BlockNumHash>>, tip: Option<BlockNumHash>) {
    tx.send_if_modified(|current| {
        let changed = *current != tip;
        *current = tip;
        changed
    });
}

async fn read_tip(client: &Client) -> Result<Option<BlockNumHash>, tokio_postgres::Error> {
    let row = client.query_one("SELECT tip_number, tip_hash FROM coldchain.meta", &[]).await?;
    let n: Option<i64> = row.try_get(0)?;
    let h: Option<&[u8]> = row.try_get(1)?;
    Ok(match (n.and_then(|n| u64::try_from(n).ok()), h) {
        (Some(n), Some(h)) if h.len() == 32 => {
            Some(BlockNumHash::new(n, alloy::primitives::B256::from_slice(h)))
        }
        _ => None,
    })
}

impl Listener {
    /// The task: listen, fall back to polling, reconnect; until stopped.
    pub(crate) async fn run(self) {
        let poll = self.poll.max(Duration::from_millis(10));
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.stop.is_cancelled() {
                return;
            }
            match self.listen(poll).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(error = %e, "coldchain-postgres: tip listener lost its connection; polling");
                }
            }
            // Poll through the pool while the listen connection is down.
            if let Ok(Ok(client)) = tokio::time::timeout(poll, self.pool.get()).await
                && let Ok(Ok(tip)) = tokio::time::timeout(poll, read_tip(&client)).await
            {
                publish(&self.tx, tip);
            }
            tokio::select! {
                _ = self.stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(poll);
        }
    }

    /// One listen session; `Ok` when stopped, `Err` when the connection
    /// failed.
    async fn listen(&self, poll: Duration) -> Result<(), String> {
        let db = |e: tokio_postgres::Error| e.to_string();
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(db)?;
        let (ntx, mut nrx) = mpsc::channel::<String>(64);
        let driver = tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(msg) = messages.next().await {
                match msg {
                    Ok(AsyncMessage::Notification(n)) => {
                        // A full channel drops the payload: the next poll
                        // catches up.
                        let _ = ntx.try_send(n.payload().to_owned());
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });
        let _abort = AbortOnDrop(driver);
        client.batch_execute(&format!("LISTEN {TIP_CHANNEL}")).await.map_err(db)?;
        publish(&self.tx, read_tip(&client).await.map_err(db)?);
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = self.stop.cancelled() => return Ok(()),
                msg = nrx.recv() => match msg {
                    Some(payload) => match parse_tip_payload(&payload) {
                        Some(tip) => publish(&self.tx, tip),
                        None => publish(&self.tx, read_tip(&client).await.map_err(db)?),
                    },
                    None => return Err("the listen connection ended".into()),
                },
                _ = tick.tick() => {
                    let tip = match tokio::time::timeout(poll * 5, read_tip(&client)).await {
                        Ok(r) => r.map_err(db)?,
                        // A stuck connection: drop it and reconnect.
                        Err(_) => return Err("the listen connection stopped answering".into()),
                    };
                    publish(&self.tx, tip);
                }
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
