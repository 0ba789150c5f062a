//! The bound on the `service` label's distinct values.
//!
//! Why bounded: every distinct label set is a time series of its own, held for the life of the
//! process by the metric family here and, for every scrape, by each Prometheus that scrapes it.
//! A server's service is its own listening address, a handful per host, but a client's service
//! is the *remote* address and port: a host that connects to many peers (a crawler, a proxy, a
//! load balancer's health checks, a port scan hitting it) would create a new series per peer,
//! without limit — memory growing here, slower scrapes, and a Prometheus that slows down or
//! drops the target. So the first [`MAX_SERVICES`] services seen keep their own label value and
//! every later one is counted under [`OTHER`]: totals stay exact, only the split is coarser.
//! The other labels need no bound: `state`, `from`, `to`, `role` and `initiator` take a fixed,
//! small set of values.
use std::collections::HashSet;

use crate::model::Service;

/// Most distinct `service` label values exported (besides [`OTHER`]).
pub const MAX_SERVICES: usize = 50;

/// The `service` label value of every service past the first [`MAX_SERVICES`]. No real service
/// can have it: a real one is always `address:port`.
pub const OTHER: &str = "other";

/// First come, first kept: admits up to `limit` distinct services, then folds the rest into
/// [`OTHER`]. A service once admitted keeps its label for the life of the process, so a series
/// never changes meaning half-way.
#[derive(Debug)]
pub struct ServiceLimiter {
    limit: usize,
    admitted: HashSet<String>,
    folded: u64,
}

impl Default for ServiceLimiter {
    fn default() -> Self {
        Self::new(MAX_SERVICES)
    }
}

impl ServiceLimiter {
    pub fn new(limit: usize) -> Self {
        ServiceLimiter {
            limit,
            admitted: HashSet::new(),
            folded: 0,
        }
    }

    /// The label value to count `service` under: its `address:port`, or [`OTHER`] once `limit`
    /// other services have been admitted.
    pub fn label(&mut self, service: &Service) -> String {
        let text = service.to_string();
        if self.admitted.contains(&text) {
            return text;
        }
        if self.admitted.len() < self.limit {
            self.admitted.insert(text.clone());
            return text;
        }
        self.folded += 1;
        OTHER.to_string()
    }

    /// Distinct services admitted with their own label so far.
    pub fn admitted(&self) -> usize {
        self.admitted.len()
    }

    /// Connection ends counted under [`OTHER`] so far.
    pub fn folded(&self) -> u64 {
        self.folded
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    use super::*;

    fn v4(port: u16) -> Service {
        Service {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            port,
        }
    }

    #[test]
    fn keeps_the_first_services_and_folds_the_rest() {
        let mut limiter = ServiceLimiter::new(3);
        assert_eq!(limiter.label(&v4(1)), "10.0.0.1:1");
        assert_eq!(limiter.label(&v4(2)), "10.0.0.1:2");
        assert_eq!(limiter.label(&v4(3)), "10.0.0.1:3");
        assert_eq!(limiter.label(&v4(4)), OTHER);
        assert_eq!(limiter.label(&v4(5)), OTHER);
        // Admitted services keep their label after the limit is reached.
        assert_eq!(limiter.label(&v4(1)), "10.0.0.1:1");
        assert_eq!(limiter.label(&v4(3)), "10.0.0.1:3");
        assert_eq!(limiter.admitted(), 3);
        assert_eq!(limiter.folded(), 2);
    }

    #[test]
    fn repeats_do_not_use_up_the_limit() {
        let mut limiter = ServiceLimiter::new(2);
        for _ in 0..100 {
            assert_eq!(limiter.label(&v4(80)), "10.0.0.1:80");
        }
        let v6 = Service {
            addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
            port: 443,
        };
        assert_eq!(limiter.label(&v6), "[::1]:443");
        assert_eq!(limiter.label(&v4(8080)), OTHER);
        assert_eq!(limiter.admitted(), 2);
    }

    #[test]
    fn default_limit_is_fifty_distinct_values() {
        let mut limiter = ServiceLimiter::default();
        let labels: HashSet<String> = (1..=1000).map(|p| limiter.label(&v4(p))).collect();
        assert_eq!(labels.len(), MAX_SERVICES + 1, "50 services and 'other'");
        assert!(labels.contains(OTHER));
        assert_eq!(limiter.folded(), 1000 - MAX_SERVICES as u64);
    }
}
