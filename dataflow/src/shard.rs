//! Which worker owns what. Pure functions, so the assignment can be tested and reasoned
//! about without timely or Kafka.

/// The partitions of a topic with `partitions` partitions that worker `index` of `peers`
/// reads: partition p belongs to worker p mod peers.
pub fn partitions_for_worker(partitions: i32, index: usize, peers: usize) -> Vec<i32> {
    assert!(peers > 0 && index < peers, "worker {index} of {peers}");
    (0..partitions)
        .filter(|p| *p as usize % peers == index)
        .collect()
}

/// The routing hash of a record key (the stream id): every chunk of a stream goes to the
/// same worker, so that worker alone holds the stream's state. FNV-1a, stable across
/// processes and builds (unlike `DefaultHasher`).
pub fn route(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_exactly_one_worker() {
        for partitions in 0..10 {
            for peers in 1..6 {
                let mut all: Vec<i32> = (0..peers)
                    .flat_map(|w| partitions_for_worker(partitions, w, peers))
                    .collect();
                all.sort();
                assert_eq!(all, (0..partitions).collect::<Vec<_>>());
            }
        }
    }

    #[test]
    fn partitions_are_spread_evenly() {
        let counts: Vec<usize> = (0..3)
            .map(|w| partitions_for_worker(8, w, 3).len())
            .collect();
        assert_eq!(counts, vec![3, 3, 2]);
    }

    #[test]
    fn route_is_stable() {
        // Fixed values: a change here reshuffles streams between workers on upgrade.
        assert_eq!(route(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(route(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(route(b"paddock-1"), route(b"paddock-1"));
        assert_ne!(route(b"paddock-1"), route(b"paddock-2"));
    }
}
