//! Spreadscaler placement.
//!
//! A spreadscaler runs `replicas` instances split across named spreads. Each
//! spread has label requirements, which a host must all match to be
//! eligible, and a weight (100 unless given). Instances are shared between
//! spreads in proportion to their weights, using the largest-remainder
//! method so that the shares always add up to `replicas` exactly; ties go
//! to the spread declared first. Within a spread, instances are dealt
//! round-robin over its eligible hosts in host-id order, so the result is
//! deterministic and no host gets more than one instance above another.

use std::collections::BTreeMap;

/// Weight of a spread that does not give one.
pub const DEFAULT_WEIGHT: u32 = 100;

/// One spread of a spreadscaler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spread {
    /// Name, unique within the scaler.
    pub name: String,
    /// Labels a host must carry, with these values, to be eligible.
    pub requirements: BTreeMap<String, String>,
    /// Relative weight. Defaults to [`DEFAULT_WEIGHT`].
    pub weight: u32,
}

impl Spread {
    /// A spread with no requirements and the default weight.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            requirements: BTreeMap::new(),
            weight: DEFAULT_WEIGHT,
        }
    }

    /// Whether a host with `labels` is eligible for this spread.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// Splits `replicas` instances between `spreads` by weight.
///
/// With no spreads, or spreads whose weights are all 0, every instance goes
/// to one implicit spread; the result then has a single entry named
/// `default`.
///
/// # Examples
///
/// ```
/// use trellis_wadm::spread::{shares, Spread};
///
/// let mut east = Spread::named("east");
/// east.weight = 75;
/// let mut west = Spread::named("west");
/// west.weight = 25;
/// assert_eq!(shares(4, &[east, west]), vec![("east".to_owned(), 3), ("west".to_owned(), 1)]);
/// ```
pub fn shares(replicas: u32, spreads: &[Spread]) -> Vec<(String, u32)> {
    let total: u64 = spreads.iter().map(|s| u64::from(s.weight)).sum();
    if total == 0 {
        return vec![("default".to_owned(), replicas)];
    }
    let mut out: Vec<(String, u32)> = Vec::with_capacity(spreads.len());
    let mut remainders: Vec<(u64, usize)> = Vec::with_capacity(spreads.len());
    let mut given: u64 = 0;
    for (index, spread) in spreads.iter().enumerate() {
        let exact = u64::from(replicas) * u64::from(spread.weight);
        let floor = exact / total;
        given += floor;
        remainders.push((exact % total, index));
        out.push((
            spread.name.clone(),
            u32::try_from(floor).unwrap_or(u32::MAX),
        ));
    }
    // Largest remainder first; the earlier spread wins a tie.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    let left = u64::from(replicas).saturating_sub(given);
    for &(_, index) in remainders
        .iter()
        .take(usize::try_from(left).unwrap_or(usize::MAX))
    {
        if let Some(entry) = out.get_mut(index) {
            entry.1 += 1;
        }
    }
    out
}

/// Deals `count` instances round-robin over `hosts` (sorted by id first).
/// Returns nothing when there are no hosts: the instances cannot be placed.
///
/// # Examples
///
/// ```
/// use trellis_wadm::spread::deal;
///
/// let placed = deal(5, &["N2", "N1"]);
/// assert_eq!(placed.get("N1"), Some(&3));
/// assert_eq!(placed.get("N2"), Some(&2));
/// ```
pub fn deal<'a>(count: u32, hosts: &[&'a str]) -> BTreeMap<&'a str, u32> {
    let mut sorted: Vec<&'a str> = hosts.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = BTreeMap::new();
    let n = u32::try_from(sorted.len()).unwrap_or(u32::MAX);
    if n == 0 {
        return out;
    }
    for (i, host) in sorted.into_iter().enumerate() {
        let i = u32::try_from(i).unwrap_or(u32::MAX);
        let each = count / n + u32::from(i < count % n);
        if each > 0 {
            out.insert(host, each);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn equal_weights_split_evenly_and_the_first_spread_takes_the_odd_one() {
        let spreads = [Spread::named("a"), Spread::named("b")];
        assert_eq!(shares(3, &spreads), vec![("a".into(), 2), ("b".into(), 1)]);
    }

    #[test]
    fn no_spreads_means_one_default_spread() {
        assert_eq!(shares(7, &[]), vec![("default".into(), 7)]);
    }

    #[test]
    fn requirements_must_all_match() {
        let mut spread = Spread::named("eu");
        spread.requirements.insert("zone".into(), "eu".into());
        spread.requirements.insert("gpu".into(), "true".into());
        let mut labels = BTreeMap::from([("zone".to_owned(), "eu".to_owned())]);
        assert!(!spread.matches(&labels));
        labels.insert("gpu".into(), "true".into());
        assert!(spread.matches(&labels));
    }

    proptest! {
        #[test]
        fn shares_always_add_up_to_replicas(
            replicas in 0u32..10_000,
            weights in proptest::collection::vec(0u32..1_000, 0..8),
        ) {
            let spreads: Vec<Spread> = weights.iter().enumerate().map(|(i, w)| {
                let mut s = Spread::named(format!("s{i}"));
                s.weight = *w;
                s
            }).collect();
            let out = shares(replicas, &spreads);
            prop_assert_eq!(out.iter().map(|(_, n)| u64::from(*n)).sum::<u64>(), u64::from(replicas));
            // A spread of weight 0 gets nothing when another has weight.
            if weights.iter().any(|w| *w > 0) {
                for (spread, (_, n)) in spreads.iter().zip(&out) {
                    if spread.weight == 0 { prop_assert_eq!(*n, 0); }
                }
            }
        }

        #[test]
        fn dealing_is_even_and_complete(count in 0u32..1_000, hosts in 1usize..20) {
            let names: Vec<String> = (0..hosts).map(|i| format!("N{i:02}")).collect();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let placed = deal(count, &refs);
            prop_assert_eq!(placed.values().sum::<u32>(), count);
            let max = placed.values().max().copied().unwrap_or(0);
            let min = if placed.len() == hosts { placed.values().min().copied().unwrap_or(0) } else { 0 };
            prop_assert!(max - min <= 1);
        }
    }
}
