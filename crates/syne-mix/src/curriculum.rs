//! The perplexity curriculum (reference/paper-spec.md §5): documents scored by the backbone
//! (`syne ppl`), split into K quantile buckets of perplexity, the buckets ordered easy-to-hard
//! (`ascending`, the paper), hard-to-easy (`descending`) or at random (`random_buckets`), and
//! the documents shuffled within each bucket with a seed. The ablations without scores:
//! `shuffled` (every document in a seeded random order — the paper's random baseline) and
//! `none` (the documents in corpus order).

use serde::{Deserialize, Serialize};

use crate::error::{MixError, Result};

pub use syne_recipe::CurriculumOrder as Order;

/// A document's place in the curriculum.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Index of the document in the input.
    pub doc: usize,
    /// Its perplexity bucket (0 = easiest).
    pub bucket: usize,
}

fn shuffle<T>(v: &mut [T], rng: &mut u64) {
    for i in (1..v.len()).rev() {
        v.swap(i, (syne_data::text::splitmix64(rng) % (i as u64 + 1)) as usize);
    }
}

/// The curriculum order of documents with perplexities `ppl`: bucket `b` holds the documents
/// whose rank (by perplexity, ties by index) falls in the `b`-th of `buckets` equal shares.
/// Documents without a finite perplexity go to the hardest bucket (they are counted by the
/// caller). Deterministic given `seed`.
pub fn order(ppl: &[f64], buckets: usize, order: Order, seed: u64) -> Result<Vec<Placement>> {
    if buckets == 0 {
        return Err(MixError::Plan("the curriculum needs at least one bucket".into()));
    }
    let n = ppl.len();
    let mut ranked: Vec<usize> = (0..n).collect();
    let key = |i: usize| if ppl[i].is_finite() { ppl[i] } else { f64::INFINITY };
    ranked.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(a.cmp(&b)));
    let mut by_bucket: Vec<Vec<usize>> = vec![Vec::new(); buckets];
    for (rank, &doc) in ranked.iter().enumerate() {
        by_bucket[rank * buckets / n.max(1)].push(doc);
    }
    let mut rng = seed;
    match order {
        // Perplexity unused: one bucket, shuffled or as it is.
        Order::Shuffled => {
            let mut docs: Vec<usize> = (0..n).collect();
            shuffle(&mut docs, &mut rng);
            return Ok(docs.into_iter().map(|doc| Placement { doc, bucket: 0 }).collect());
        }
        Order::None => return Ok((0..n).map(|doc| Placement { doc, bucket: 0 }).collect()),
        Order::Ascending | Order::Descending | Order::RandomBuckets => {}
    }
    let mut bucket_order: Vec<usize> = (0..buckets).collect();
    match order {
        Order::Descending => bucket_order.reverse(),
        Order::RandomBuckets => shuffle(&mut bucket_order, &mut rng),
        _ => {}
    }
    let mut out = Vec::with_capacity(n);
    for b in bucket_order {
        let mut docs = std::mem::take(&mut by_bucket[b]);
        shuffle(&mut docs, &mut rng);
        out.extend(docs.into_iter().map(|doc| Placement { doc, bucket: b }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_buckets_in_each_order() {
        let ppl: Vec<f64> = (0..100).map(|i| ((i * 37) % 100) as f64 + 1.0).collect();
        let asc = order(&ppl, 4, Order::Ascending, 7).unwrap();
        assert_eq!(asc.len(), 100);
        // Every document exactly once.
        let mut seen: Vec<usize> = asc.iter().map(|p| p.doc).collect();
        seen.sort();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // Buckets of 25 in order, each holding the right perplexity range.
        for (k, chunk) in asc.chunks(25).enumerate() {
            assert!(chunk.iter().all(|p| p.bucket == k));
            assert!(chunk.iter().all(|p| ppl[p.doc] > 25.0 * k as f64 && ppl[p.doc] <= 25.0 * (k + 1) as f64));
        }
        // Shuffled within a bucket, reproducibly.
        assert_ne!(asc[..25].iter().map(|p| ppl[p.doc]).collect::<Vec<_>>(), (1..=25).map(f64::from).collect::<Vec<_>>());
        assert_eq!(asc, order(&ppl, 4, Order::Ascending, 7).unwrap());
        assert_ne!(asc, order(&ppl, 4, Order::Ascending, 8).unwrap());
        let desc = order(&ppl, 4, Order::Descending, 7).unwrap();
        assert_eq!(desc.iter().map(|p| p.bucket).collect::<Vec<_>>()[..1], [3]);
        let rnd = order(&ppl, 4, Order::RandomBuckets, 7).unwrap();
        let mut bs: Vec<usize> = rnd.chunks(25).map(|c| c[0].bucket).collect();
        bs.sort();
        assert_eq!(bs, vec![0, 1, 2, 3]);
    }

    #[test]
    fn shuffled_and_none_ignore_perplexity() {
        let ppl: Vec<f64> = (0..200).map(|i| i as f64).collect();
        // `none`: the input order, whatever the scores.
        let none = order(&ppl, 4, Order::None, 7).unwrap();
        assert_eq!(none.iter().map(|p| p.doc).collect::<Vec<_>>(), (0..200).collect::<Vec<_>>());
        assert!(none.iter().all(|p| p.bucket == 0));
        // `shuffled`: a seeded permutation of all documents, not bucket by bucket: the first
        // quarter holds documents from every quarter of the perplexity range.
        let sh = order(&ppl, 4, Order::Shuffled, 7).unwrap();
        let mut seen: Vec<usize> = sh.iter().map(|p| p.doc).collect();
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        let quarters: std::collections::BTreeSet<usize> = sh[..50].iter().map(|p| p.doc / 50).collect();
        assert_eq!(quarters.len(), 4, "{quarters:?}");
        assert_eq!(sh, order(&[0.0; 200], 1, Order::Shuffled, 7).unwrap(), "scores play no part");
        assert_ne!(sh, order(&ppl, 4, Order::Shuffled, 8).unwrap());
        assert_eq!("random".parse::<Order>().unwrap(), Order::RandomBuckets);
        assert_eq!("shuffled".parse::<Order>().unwrap(), Order::Shuffled);
        assert!(!Order::None.needs_scores() && !Order::Shuffled.needs_scores() && Order::Ascending.needs_scores());
    }

    #[test]
    fn edge_cases() {
        assert!(order(&[1.0], 0, Order::Ascending, 0).is_err());
        assert!(order(&[], 3, Order::Ascending, 0).unwrap().is_empty());
        // More buckets than documents; NaN goes last.
        let o = order(&[f64::NAN, 2.0, 1.0], 5, Order::Ascending, 0).unwrap();
        assert_eq!(o.iter().map(|p| p.doc).collect::<Vec<_>>(), vec![2, 1, 0]);
        assert_eq!("ascending".parse::<Order>().unwrap(), Order::Ascending);
        assert!("up".parse::<Order>().is_err());
    }
}
