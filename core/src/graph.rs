//! Graph algorithms over resolved dependency lists: topological order, cycle paths and
//! "is X a transitive dependency of Y" queries. Nothing here recurses, so a 100k-deep chain
//! costs no stack.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::{ActionIdx, Adjacency};

/// The cycles that stop a plan from being ordered: the first [`MAX_CYCLES`] as paths, and how
/// many more there are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cycles {
    /// Each cycle as a path whose last element depends on the first.
    pub found: Vec<Vec<ActionIdx>>,
    /// Further cycles found but not listed (one per dependency that closes a loop).
    pub more: usize,
}

/// Kahn's algorithm with file order as the tie-break (a min-heap), so the order is stable.
/// On failure returns the cycles found among the actions that could not be ordered.
pub fn topological_order(deps: &Adjacency) -> Result<Vec<ActionIdx>, Cycles> {
    let n = deps.len();
    let mut remaining: Vec<u32> = deps.iter().map(|d| d.len() as u32).collect();
    let dependents = deps.reversed(n);
    let mut ready: BinaryHeap<Reverse<ActionIdx>> = (0..n as ActionIdx)
        .filter(|&i| remaining[i as usize] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(idx)) = ready.pop() {
        order.push(idx);
        for &next in &dependents[idx as usize] {
            remaining[next as usize] -= 1;
            if remaining[next as usize] == 0 {
                ready.push(Reverse(next));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycles(deps, &remaining))
}

/// At most this many cycles are returned: a hostile graph can hold millions of them, each as
/// long as the plan, and the first few are what an author needs to start fixing.
pub const MAX_CYCLES: usize = 10;

/// Finds distinct cycles among the unordered actions (`remaining > 0`) with an iterative DFS:
/// one per dependency that leads back onto the path. The first [`MAX_CYCLES`] are returned as
/// paths; the rest are only counted (in the same linear walk: no path is built for them).
fn find_cycles(deps: &Adjacency, remaining: &[u32]) -> Cycles {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    let mut cycles = Cycles {
        found: Vec::new(),
        more: 0,
    };
    for start in 0..deps.len() {
        if remaining[start] == 0 || mark[start] != Mark::New {
            continue;
        }
        // Stack of (node, next edge to try); `path` mirrors the nodes on the stack.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        mark[start] = Mark::OnPath;
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            if let Some(&dep) = deps[node].get(*edge) {
                *edge += 1;
                let dep = dep as usize;
                if remaining[dep] == 0 {
                    continue;
                }
                match mark[dep] {
                    Mark::New => {
                        mark[dep] = Mark::OnPath;
                        stack.push((dep, 0));
                    }
                    Mark::OnPath if cycles.found.len() >= MAX_CYCLES => cycles.more += 1,
                    Mark::OnPath => {
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        // Edges point at dependencies; reverse so the path reads a → b
                        // meaning "a is needed by b".
                        let mut cycle: Vec<ActionIdx> =
                            stack[from..].iter().map(|&(n, _)| n as ActionIdx).collect();
                        cycle.reverse();
                        cycles.found.push(cycle);
                    }
                    Mark::Done => {}
                }
            } else {
                mark[node] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

/// For each query `(from, to)`, whether `to` is a transitive dependency of `from` (an action is
/// never its own dependency). `order` must be a topological order of `deps`.
///
/// Targets are taken 64 at a time in topological order, and one bit per target is propagated
/// along the order from the first target to the last action that asks about them: the cost is
/// O((actions + dependencies) × distinct targets / 64) at worst and usually far less, instead of
/// one ancestor walk per query (quadratic on a long chain where every action reads another's
/// outputs).
pub(crate) fn transitive_dependencies(
    deps: &Adjacency,
    order: &[ActionIdx],
    queries: &[(ActionIdx, ActionIdx)],
) -> Vec<bool> {
    let n = deps.len();
    let mut answers = vec![false; queries.len()];
    if n == 0 || order.len() != n {
        return answers;
    }
    let mut pos = vec![0usize; n];
    for (p, &idx) in order.iter().enumerate() {
        pos[idx as usize] = p;
    }
    let valid = |idx: ActionIdx| (idx as usize) < n;
    // A dependency always comes before its dependent, so only these queries can be true.
    let mut pending: Vec<usize> = (0..queries.len())
        .filter(|&q| {
            let (from, to) = queries[q];
            valid(from) && valid(to) && pos[to as usize] < pos[from as usize]
        })
        .collect();
    pending.sort_unstable_by_key(|&q| pos[queries[q].1 as usize]);

    let mut bit = vec![0u64; n];
    let mut mask = vec![0u64; n];
    let mut start = 0;
    while start < pending.len() {
        // The next (up to) 64 distinct targets and every query about them.
        let mut targets: Vec<usize> = Vec::with_capacity(64);
        let mut end = start;
        while end < pending.len() {
            let target = queries[pending[end]].1 as usize;
            if targets.last() != Some(&target) {
                if targets.len() == 64 {
                    break;
                }
                targets.push(target);
            }
            end += 1;
        }
        let batch = &pending[start..end];
        start = end;
        for (b, &target) in targets.iter().enumerate() {
            bit[target] = 1 << b;
        }
        let lo = targets.first().map_or(0, |&t| pos[t]);
        let hi = batch
            .iter()
            .map(|&q| pos[queries[q].0 as usize])
            .max()
            .unwrap_or(lo);
        // mask[v]: the batch's targets that v is or depends on. Dependencies before `lo` cannot
        // reach a target (they come before all of them); the ones in range were set already.
        for &v in &order[lo..=hi] {
            let v = v as usize;
            let mut m = bit[v];
            for &d in &deps[v] {
                if pos[d as usize] >= lo {
                    m |= mask[d as usize];
                }
            }
            mask[v] = m;
        }
        for &q in batch {
            let (from, to) = queries[q];
            answers[q] = mask[from as usize] & bit[to as usize] != 0;
        }
        for &target in &targets {
            bit[target] = 0;
        }
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adj(lists: &[Vec<ActionIdx>]) -> Adjacency {
        lists.iter().collect()
    }

    #[test]
    fn orders_by_dependencies_then_file_order() {
        let deps = vec![vec![2], vec![], vec![1], vec![]];
        assert_eq!(topological_order(&adj(&deps)), Ok(vec![1, 2, 0, 3]));
    }

    #[test]
    fn reports_a_cycle_path() {
        // 0 depends on 2, 1 on 0, 2 on 1: 0 → 1 → 2 → 0 in "needed by" terms.
        let deps = vec![vec![2], vec![0], vec![1], vec![]];
        let cycles = topological_order(&adj(&deps)).expect_err("cyclic");
        assert_eq!(cycles.found.len(), 1);
        assert_eq!(cycles.more, 0);
        let cycle = &cycles.found[0];
        assert_eq!(cycle.len(), 3);
        for (i, &node) in cycle.iter().enumerate() {
            let next = cycle[(i + 1) % cycle.len()];
            assert!(
                deps[next as usize].contains(&node),
                "{next} must depend on {node}"
            );
        }
    }

    #[test]
    fn cycles_are_capped() {
        // Node k depends on k+1; the last one depends on every other: one cycle per back edge.
        let n = 200;
        let mut deps: Vec<Vec<ActionIdx>> = (0..n - 1).map(|k| vec![k + 1]).collect();
        deps.push((0..n - 1).collect());
        let cycles = topological_order(&adj(&deps)).expect_err("cyclic");
        assert_eq!(cycles.found.len(), MAX_CYCLES);
        assert_eq!(cycles.more, n as usize - 1 - MAX_CYCLES);
    }

    #[test]
    fn transitive_dependency_queries() {
        // 0 <- 1 <- 2, 3 alone, 4 depends on 2 and 3.
        let deps = vec![vec![], vec![0], vec![1], vec![], vec![2, 3]];
        let order = topological_order(&adj(&deps)).expect("acyclic");
        let queries = [
            (2, 0),
            (0, 2),
            (4, 0),
            (4, 3),
            (3, 0),
            (2, 2),
            (1, 0),
            (9, 0),
        ];
        assert_eq!(
            transitive_dependencies(&adj(&deps), &order, &queries),
            [true, false, true, true, false, false, true, false]
        );
    }

    #[test]
    fn transitive_dependencies_on_a_long_chain_are_linear() {
        // Every action of a 100k chain asks about the first one and about its grandparent.
        let n: u32 = 100_000;
        let deps: Vec<Vec<ActionIdx>> = (0..n)
            .map(|k| k.checked_sub(1).into_iter().collect())
            .collect();
        let order: Vec<ActionIdx> = (0..n).collect();
        let mut queries: Vec<(ActionIdx, ActionIdx)> = (1..n).map(|k| (k, 0)).collect();
        queries.extend((2..n).map(|k| (k, k - 2)));
        let answers = transitive_dependencies(&adj(&deps), &order, &queries);
        assert!(answers.iter().all(|&a| a));
    }

    #[test]
    fn self_loop_is_a_cycle() {
        let cycles = topological_order(&adj(&[vec![0]])).expect_err("cyclic");
        assert_eq!(cycles.found, vec![vec![0]]);
    }
}
