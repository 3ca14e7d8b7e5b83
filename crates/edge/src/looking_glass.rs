//! The looking glass: the server's questions about an instance's routes and sessions,
//! answered from the speaker and the kernel (a long poll of its own, beside the config's).

use std::time::Duration;

use cic_model::edge::{
    Attachment, LinkFacts, NeighborState, RouteAnswer, RouteDirection, RouteEntry, RouteQuery,
    SessionFacts, SessionKind,
};
use tracing::{debug, warn};

use crate::report::{session_statuses, tcp_drops};
use crate::{Agent, instance};

/// How many refused routes a diagnosis names (the looking glass has them all).
const DIAGNOSE_REFUSED: usize = 5;

impl Agent {
    /// Answers the server's looking-glass questions as they come (a long poll of its own,
    /// beside the config's).
    pub(crate) async fn query_loop(&self) {
        let mut backoff = Duration::from_millis(500);
        loop {
            match self.client.queries(self.opts.poll_wait).await {
                Ok(qs) => {
                    backoff = Duration::from_millis(500);
                    for q in qs {
                        let answer = self.answer(&q).await;
                        if let Err(e) = self.client.answer(&q.id, &answer).await {
                            warn!("looking glass: {e}");
                        }
                    }
                }
                Err(e) => {
                    debug!("looking glass: {e}; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn answer(&self, q: &RouteQuery) -> RouteAnswer {
        if q.diagnose {
            return RouteAnswer {
                routes: vec![],
                error: None,
                facts: Some(Box::new(self.diagnose(q).await)),
            };
        }
        let st = self.state.lock().await;
        let vrps = st.rpki.as_ref().and_then(|r| r.data.borrow().clone());
        for i in st.instances.values() {
            match i
                .looking_glass(&q.connection_id, q.family, q.direction, vrps.as_deref())
                .await
            {
                Some(Ok(routes)) => {
                    return RouteAnswer {
                        routes,
                        error: None,
                        facts: None,
                    };
                }
                Some(Err(e)) => {
                    return RouteAnswer {
                        routes: vec![],
                        error: Some(e),
                        facts: None,
                    };
                }
                None => {}
            }
        }
        RouteAnswer {
            facts: None,
            routes: vec![],
            error: Some(format!(
                "{} has no {} BGP session on this edge (it has no such peering, its link is not up, or a failover test holds it down)",
                q.connection_id,
                match q.family {
                    cic_model::edge::Family::Ipv4 => "IPv4",
                    cic_model::edge::Family::Ipv6 => "IPv6",
                }
            )),
        }
    }

    /// What this edge sees of one session of a connection, for `:diagnose`: the trunk's
    /// port and the connection's interface, the peer's ARP / ND entry, the session, and
    /// the first routes import refused.
    async fn diagnose(&self, q: &RouteQuery) -> SessionFacts {
        let mut st = self.state.lock().await;
        // The one session, as a report would say it (its namespace's drops read alone).
        let session = match st
            .applied_instances
            .values()
            .find(|ic| ic.connections.iter().any(|c| c.id == q.connection_id))
            .map(|ic| ic.id.clone())
        {
            Some(id) => {
                let (md5, gtsm) = tcp_drops(&mut st, Some(&id));
                st.instances.get(&id).and_then(|i| {
                    let status = i.status().borrow().clone();
                    session_statuses(i, &status, &md5, &gtsm)
                        .into_iter()
                        .find(|s| {
                            s.kind == SessionKind::Customer
                                && s.resource_id == q.connection_id
                                && s.family == q.family
                        })
                })
            }
            None => None,
        };
        let min_hold_time_secs = st
            .applied_context
            .as_ref()
            .map_or(0, |c| c.bgp.min_hold_time_secs);
        let mut facts = SessionFacts {
            port: None,
            missing_port: None,
            interface: None,
            neighbor: NeighborState::None,
            session,
            refused: vec![],
            refused_total: 0,
            min_hold_time_secs,
        };
        let Some((instance, c)) = st.applied_instances.values().find_map(|ic| {
            let c = ic.connections.iter().find(|c| c.id == q.connection_id)?;
            Some((st.instances.get(&ic.id)?, c))
        }) else {
            return facts;
        };
        let trunk = st
            .applied_context
            .as_ref()
            .and_then(|ctx| ctx.trunks.get(&c.trunk_id));
        let port = trunk.and_then(|(t, _)| match &t.attachment {
            Attachment::Vlan { port } => Some(port.clone()),
            Attachment::Lag { bond, .. } => Some(bond.clone()),
            Attachment::Vxlan { port, .. } => port.clone(),
        });
        let facts_of = |l: &cic_dataplane::Link| LinkFacts {
            name: l.name.clone(),
            up: l.up,
            carrier: l.carrier,
        };
        if let Some(port) = port {
            match self.underlay.link(&port).await {
                Ok(Some(l)) => facts.port = Some(facts_of(&l)),
                Ok(None) => facts.missing_port = Some(port),
                Err(e) => warn!("diagnose: {e}"),
            }
        }
        let nl = instance.netlink();
        if let Ok(Some(l)) = nl.link(&instance::ifname(&c.id)).await {
            facts.interface = Some(facts_of(&l));
            if let Some(p) = c.peerings.iter().find(|p| p.family() == q.family) {
                facts.neighbor = match nl.neighbor(l.index, p.peer_ip).await {
                    Ok(Some(cic_dataplane::Neighbor::Incomplete)) => NeighborState::Incomplete,
                    Ok(Some(cic_dataplane::Neighbor::Failed)) => NeighborState::Failed,
                    Ok(Some(cic_dataplane::Neighbor::Resolved)) => NeighborState::Resolved,
                    Ok(None) => NeighborState::None,
                    Err(e) => {
                        warn!("diagnose: {e}");
                        NeighborState::None
                    }
                };
            }
        }
        let vrps = st.rpki.as_ref().and_then(|r| r.data.borrow().clone());
        if let Some(Ok(routes)) = instance
            .looking_glass(&c.id, q.family, RouteDirection::Received, vrps.as_deref())
            .await
        {
            let refused: Vec<RouteEntry> = routes
                .into_iter()
                .filter(|r| r.rejected.is_some())
                .collect();
            facts.refused_total = refused.len() as u32;
            facts.refused = refused.into_iter().take(DIAGNOSE_REFUSED).collect();
        }
        facts
    }
}
