//! MariaDB GTID positions (`domain-server-sequence`, comma-separated per domain): parsing
//! and the comparisons failover needs (who is most advanced, did one server apply what
//! another has, are there errant transactions).

use std::collections::BTreeMap;

/// One GTID: replication domain, originating server id, sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gtid {
    /// Replication domain.
    pub domain: u32,
    /// Server id that originated it.
    pub server: u32,
    /// Sequence number within the domain.
    pub seq: u64,
}

/// A GTID position: the last GTID per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    /// Domain → last GTID.
    pub domains: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    /// Parses `0-1-100,1-2-7` (empty = no position); `None` if malformed.
    pub fn parse(text: &str) -> Option<Self> {
        let mut domains = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let gtid = Gtid {
                domain: it.next()?.parse().ok()?,
                server: it.next()?.parse().ok()?,
                seq: it.next()?.parse().ok()?,
            };
            if it.next().is_some() {
                return None;
            }
            domains.insert(gtid.domain, gtid);
        }
        Some(GtidPos { domains })
    }

    /// Whether this position includes everything up to `other` in every domain of `other`.
    pub fn covers(&self, other: &GtidPos) -> bool {
        other
            .domains
            .iter()
            .all(|(d, g)| self.domains.get(d).is_some_and(|mine| mine.seq >= g.seq))
    }

    /// Per domain, the later of the two positions: what a server has applied, from its
    /// binlog (`gtid_binlog_pos`) and from replication (`gtid_slave_pos`) together.
    pub fn union(&self, other: &GtidPos) -> GtidPos {
        let mut domains = self.domains.clone();
        for (d, g) in &other.domains {
            let keep = domains.get(d).is_some_and(|mine| mine.seq >= g.seq);
            if !keep {
                domains.insert(*d, *g);
            }
        }
        GtidPos { domains }
    }

    /// Sum of sequence numbers: a total order good enough to pick the most advanced of
    /// several standbys of one master (they share domains).
    pub fn progress(&self) -> u64 {
        self.domains.values().map(|g| g.seq).sum()
    }
}

impl std::fmt::Display for GtidPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .domains
            .values()
            .map(|g| format!("{}-{}-{}", g.domain, g.server, g.seq))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The first sign of errant transactions on a former master: its last GTID in a domain
/// was written by itself (`node_server_id`) beyond what the new master applied from it
/// (`master_applied`, the new master's `gtid_slave_pos`). Such a server must not replicate
/// from the new master: its extra transactions would never be undone.
pub fn errant(
    node_server_id: u32,
    node_binlog: &GtidPos,
    master_applied: &GtidPos,
) -> Option<Gtid> {
    node_binlog.domains.values().copied().find(|g| {
        let applied = master_applied.domains.get(&g.domain).map_or(0, |x| x.seq);
        g.server == node_server_id && g.seq > applied
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_compare() {
        let a = GtidPos::parse("0-1-100,1-2-7").unwrap();
        let b = GtidPos::parse("0-1-99").unwrap();
        assert!(a.covers(&b));
        assert!(!b.covers(&a));
        assert!(a.covers(&GtidPos::parse("").unwrap()));
        assert_eq!(a.to_string(), "0-1-100,1-2-7");
        assert_eq!(a.progress(), 107);
        assert!(GtidPos::parse("0-1").is_none());
        assert!(GtidPos::parse("x-1-2").is_none());
        assert!(GtidPos::parse("0-1-2-3").is_none());
    }

    #[test]
    fn union_takes_the_later_position_per_domain() {
        let p = |s| GtidPos::parse(s).unwrap();
        // A freshly restored server: empty binlog, the snapshot's replication position.
        let now = p("").union(&p("0-11-40"));
        assert!(now.covers(&p("0-11-40")));
        assert!(!now.covers(&p("0-11-41")));
        assert_eq!(
            p("0-1-9,1-2-3").union(&p("0-11-7,2-5-1")).to_string(),
            "0-1-9,1-2-3,2-5-1"
        );
        assert_eq!(p("0-1-9").union(&p("0-11-12")).to_string(), "0-11-12");
    }

    #[test]
    fn errant_transactions() {
        let p = |s| GtidPos::parse(s).unwrap();
        // The new master applied everything server 1 wrote.
        assert_eq!(errant(1, &p("0-1-105"), &p("0-1-105")), None);
        // Server 1 wrote 104 and 105 after the new master's last applied 103.
        assert_eq!(
            errant(1, &p("0-1-105"), &p("0-1-103")).map(|g| g.seq),
            Some(105)
        );
        // Its last GTID came from someone else (it was a standby): nothing of its own.
        assert_eq!(errant(1, &p("0-2-200"), &p("0-1-103")), None);
        // A domain the new master never saw.
        assert!(errant(1, &p("0-1-5,7-1-1"), &p("0-1-5")).is_some());
    }
}
