//! The sync loop: the edge long-polls the server for its config (as the changes since the
//! answer it holds), applies each new revision, and applies again after errors, every
//! minute against drift, and when a failover test's hold ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cic_model::edge::{EdgeConfig, EdgeConfigUpdate, NotHeld};
use tracing::{debug, info, warn};

use crate::{Agent, client, instance};

impl Agent {
    /// Applies each new revision; while the last apply left errors, applies it again with
    /// a growing pause (a busy kernel object, a port that appears later) — what failed,
    /// not every instance, so that an edge overloaded into a transient error is not given
    /// a thousand instances more to reconcile — and every minute the whole config, to undo
    /// drift (a link or route removed by hand).
    ///
    /// Started while the server cannot be reached, the agent runs the last config it was
    /// given (kept in its state directory) rather than nothing, so its sessions come back
    /// and its routes stay; the server's config replaces it once it answers.
    pub(crate) async fn sync_loop(&self) {
        let mut backoff = Duration::from_millis(500);
        let mut retry = Duration::from_millis(250);
        let mut last: Option<(Arc<EdgeConfig>, Instant)> = None;
        // When the whole config was last reconciled (a new revision's apply is of what
        // changed, a retry's of what failed).
        let mut whole_at = Instant::now();
        let mut held = Held::default();
        // (A server that answers, even to refuse us, is not for a kept config to argue.)
        if let Some(kept) = self.kept_config()
            && let Err(e @ client::ClientError::Transport(..)) =
                self.client.config(0, Duration::ZERO, None).await
        {
            warn!(
                revision = kept.revision,
                "{e}: running the last config it gave until it answers"
            );
            self.apply(&kept).await;
            self.report_soon();
            last = Some((Arc::new(kept), Instant::now()));
        }
        loop {
            let (after, failing) = {
                let st = self.state.lock().await;
                (st.applied, !st.errors.is_empty())
            };
            // A failover test ending brings its session back: apply again then.
            let hold_end = last.as_ref().and_then(|(cfg, _)| next_hold_end(cfg));
            if let Some((cfg, at)) = &last
                && let Some(whole) = apply_due(failing, *at, retry, whole_at, Instant::now())
            {
                retry = if failing {
                    (retry * 2).min(Duration::from_secs(30))
                } else {
                    Duration::from_millis(250)
                };
                if whole {
                    self.apply(cfg).await;
                    whole_at = Instant::now();
                } else {
                    self.apply_changes(cfg).await;
                }
                self.report_soon();
                last = Some((cfg.clone(), Instant::now()));
                continue;
            }
            let wait = match &last {
                Some((_, at)) if failing => (*at + retry)
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(1)),
                _ => self.opts.poll_wait,
            };
            // The server's long poll counts whole seconds: the last second of a hold is
            // slept here.
            if let Some(h) = hold_end
                && h.saturating_duration_since(Instant::now()) < Duration::from_secs(1)
            {
                tokio::time::sleep_until(h.into()).await;
                if let Some((cfg, _)) = last.take() {
                    info!("a failover test ended: bringing its session back");
                    self.apply(&cfg).await;
                    whole_at = Instant::now();
                    self.report_soon();
                    last = Some((cfg, Instant::now()));
                }
                continue;
            }
            let wait = hold_end.map_or(wait, |h| {
                wait.min(h.saturating_duration_since(Instant::now()))
            });
            let asked = Instant::now();
            match self
                .client
                .config(after, wait.min(self.opts.poll_wait), held.since())
                .await
            {
                Ok((update, bytes)) => {
                    backoff = Duration::from_millis(500);
                    let whole = update.changes_since.is_none();
                    self.config_answers[usize::from(!whole)]
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    self.config_bytes
                        .fetch_add(bytes as u64, std::sync::atomic::Ordering::Relaxed);
                    let sent = update.config.instances.len() + update.removed_instances.len();
                    let cfg = match held.take(update) {
                        Ok(cfg) => cfg,
                        Err(e) => {
                            warn!("sync: {e}; asking for the whole config");
                            continue;
                        }
                    };
                    if cfg.revision != after {
                        let fetched = Instant::now();
                        self.hand_over(&cfg);
                        retry = Duration::from_millis(250);
                        self.apply_changes(&cfg).await;
                        self.report_soon();
                        debug!(
                            revision = cfg.revision,
                            whole,
                            bytes,
                            instances_sent = sent,
                            answered = ?fetched - asked,
                            applied = ?fetched.elapsed(),
                            "a revision realised"
                        );
                        last = Some((cfg, Instant::now()));
                    }
                }
                Err(e) => {
                    // The next asks for the whole config: a server that refused
                    // `changesSince` (one older than it, behind the same address) or
                    // restarted holds no answer to send changes since.
                    held = Held::default();
                    warn!("sync: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// How often the whole config is reconciled, against drift, even while applies fail.
const WHOLE_EVERY: Duration = Duration::from_secs(60);

/// Whether the config held (last applied at `last`) is to be applied again now, and if so
/// whether whole (`Some(true)`): after errors, once `retry` has passed, what failed
/// (`Some(false)`: the instances not applied without an error, and any changed), or the
/// whole config when it was last reconciled whole (`whole`) a minute ago or more; without
/// errors, the whole config a minute after the last apply.
fn apply_due(
    failing: bool,
    last: Instant,
    retry: Duration,
    whole: Instant,
    now: Instant,
) -> Option<bool> {
    let due = if failing {
        last + retry
    } else {
        last + WHOLE_EVERY
    };
    (now >= due).then(|| !failing || now >= whole + WHOLE_EVERY)
}

/// The soonest end of a hold-down (failover test) still ahead, as an `Instant`.
fn next_hold_end(cfg: &EdgeConfig) -> Option<Instant> {
    let now = std::time::SystemTime::now();
    cfg.instances
        .iter()
        .flat_map(|i| &i.connections)
        .filter_map(instance::hold_down_end)
        .filter_map(|end| end.duration_since(now).ok())
        .min()
        .map(|d| Instant::now() + d)
}

/// The server's last answer, made whole, under its tag: the next request asks for the
/// changes since it.
#[derive(Default)]
struct Held(Option<(String, Arc<EdgeConfig>)>);

impl Held {
    /// The tag to ask for the changes since; none from a server older than tags (which
    /// answers with an empty one and refuses the parameter).
    fn since(&self) -> Option<&str> {
        self.0
            .as_ref()
            .map(|(tag, _)| tag.as_str())
            .filter(|t| !t.is_empty())
    }

    /// The whole config `update` gives, now held under its tag; changes since an answer
    /// not held are refused and forget the one held (the next request asks for the
    /// whole config).
    fn take(&mut self, update: EdgeConfigUpdate) -> Result<Arc<EdgeConfig>, NotHeld> {
        let tag = update.tag.clone();
        let base = self.0.as_ref().map(|(t, c)| (t.as_str(), &**c));
        match update.into_config(base) {
            Ok(cfg) => {
                let cfg = Arc::new(cfg);
                self.0 = Some((tag, cfg.clone()));
                Ok(cfg)
            }
            Err(e) => {
                self.0 = None;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{edge_config, instance};

    fn config(revision: u64, ids: &[&str]) -> EdgeConfig {
        edge_config(revision, ids.iter().map(|id| instance(id, &[])).collect())
    }

    fn whole(tag: &str, cfg: EdgeConfig) -> EdgeConfigUpdate {
        EdgeConfigUpdate {
            tag: tag.into(),
            changes_since: None,
            removed_instances: vec![],
            config: cfg,
        }
    }

    #[test]
    fn a_retry_applies_what_failed_and_the_whole_config_once_a_minute() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let retry = ms(250);
        // Failing: nothing before the retry's pause, then what failed.
        assert_eq!(apply_due(true, t0, retry, t0, t0 + ms(249)), None);
        assert_eq!(apply_due(true, t0, retry, t0, t0 + ms(250)), Some(false));
        // Still failing a minute after the last whole apply: the whole config.
        let later = t0 + WHOLE_EVERY;
        assert_eq!(
            apply_due(true, later - ms(250), retry, t0, later),
            Some(true)
        );
        assert_eq!(
            apply_due(true, later - ms(250), retry, t0 + ms(1), later),
            Some(false)
        );
        // Not failing: the whole config a minute after the last apply, nothing before.
        assert_eq!(apply_due(false, t0, retry, t0, t0 + ms(59_999)), None);
        assert_eq!(apply_due(false, t0, retry, t0, later), Some(true));
    }

    #[test]
    fn the_edge_asks_for_changes_since_what_it_holds_and_for_all_when_it_holds_nothing() {
        let mut held = Held::default();
        assert_eq!(held.since(), None, "nothing held: the whole config");
        let first = config(1, &["a", "b"]);
        assert_eq!(*held.take(whole("t1", first.clone())).unwrap(), first);
        assert_eq!(held.since(), Some("t1"));
        // Changes since t1: b gone, c added.
        let next = config(2, &["a", "c"]);
        let update = next.changes_from(&first, "t2".into(), "t1".into());
        assert_eq!(*held.take(update).unwrap(), next);
        assert_eq!(held.since(), Some("t2"));
        // Changes since an answer it does not hold: refused, and it holds nothing.
        let stray = config(3, &["a"]).changes_from(&first, "t3".into(), "t1".into());
        assert!(held.take(stray).is_err());
        assert_eq!(
            held.since(),
            None,
            "the next request asks for the whole config"
        );
    }

    #[test]
    fn a_server_without_tags_is_asked_for_nothing() {
        let mut held = Held::default();
        let cfg = config(1, &["a"]);
        assert_eq!(*held.take(whole("", cfg.clone())).unwrap(), cfg);
        assert_eq!(held.since(), None);
    }
}
