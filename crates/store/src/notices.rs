//! Notices between servers: what a commit tells those waiting for it (PostgreSQL's
//! LISTEN / NOTIFY), and the connection that listens.

/// A notification from the database that another server (or this one) committed
/// something others wait for. A `Notice` with an empty channel means the listening
/// connection was lost and notices may have been missed: look again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub channel: String,
    pub payload: String,
}

/// Channels of [`Notice`]s.
pub mod channel {
    /// The global revision moved (payload: the new revision).
    pub const REVISION: &str = "cic_revision";
    /// The global revision moved for operations finishing alone (payload: the new
    /// revision): nothing an edge is given changed, only operation waiters look again.
    pub const SETTLED: &str = "cic_settled";
    /// A looking-glass question for an edge (payload: the edge id).
    pub const QUESTION: &str = "cic_question";
    /// A looking-glass answer (payload: the question id).
    pub const ANSWER: &str = "cic_answer";
}

/// Listens to every [`channel`] on a connection of its own, for as long as anyone holds the
/// sender; reconnects when the connection is lost, and says so with an empty notice.
pub(crate) fn listen(url: String) -> tokio::sync::broadcast::Sender<Notice> {
    let (tx, _) = tokio::sync::broadcast::channel(1024);
    // The task ends when the last store (holder of the sender) is gone.
    let weak = tx.downgrade();
    tokio::spawn(async move {
        let lost = Notice {
            channel: String::new(),
            payload: String::new(),
        };
        loop {
            if weak.upgrade().is_none() {
                return;
            }
            let mut l = match sqlx::postgres::PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!("LISTEN connection: {e}; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(e) = l
                .listen_all([
                    channel::REVISION,
                    channel::SETTLED,
                    channel::QUESTION,
                    channel::ANSWER,
                ])
                .await
            {
                tracing::warn!("LISTEN: {e}; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            // Whatever happened while nobody listened is looked at again.
            let Some(out) = weak.upgrade() else { return };
            let _ = out.send(lost.clone());
            drop(out);
            loop {
                let next = l.try_recv().await;
                let Some(out) = weak.upgrade() else { return };
                match next {
                    Ok(Some(n)) => {
                        let _ = out.send(Notice {
                            channel: n.channel().to_string(),
                            payload: n.payload().to_string(),
                        });
                    }
                    Ok(None) => {
                        let _ = out.send(lost.clone());
                    }
                    Err(e) => {
                        tracing::warn!("LISTEN: {e}; reconnecting");
                        let _ = out.send(lost.clone());
                        break;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    });
    tx
}
