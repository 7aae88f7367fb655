//! Graph algorithms over resolved dependency lists: topological order and cycle paths.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::model::ActionIdx;

/// Kahn's algorithm with file order as the tie-break (a min-heap), so the order is stable.
/// On failure returns the cycles found among the actions that could not be ordered.
pub fn topological_order(deps: &[Vec<ActionIdx>]) -> Result<Vec<ActionIdx>, Vec<Vec<ActionIdx>>> {
    let n = deps.len();
    let mut remaining: Vec<u32> = deps.iter().map(|d| d.len() as u32).collect();
    let mut dependents = vec![Vec::new(); n];
    for (idx, list) in deps.iter().enumerate() {
        for &dep in list {
            dependents[dep as usize].push(idx as ActionIdx);
        }
    }
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

/// Finds distinct cycles among the unordered actions (`remaining > 0`) with an iterative DFS.
/// Each cycle is returned as a path whose last element depends on the first.
fn find_cycles(deps: &[Vec<ActionIdx>], remaining: &[u32]) -> Vec<Vec<ActionIdx>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    let mut cycles = Vec::new();
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
                    Mark::OnPath => {
                        let from = stack.iter().position(|&(n, _)| n == dep).unwrap_or(0);
                        // Edges point at dependencies; reverse so the path reads a → b
                        // meaning "a is needed by b".
                        let mut cycle: Vec<ActionIdx> =
                            stack[from..].iter().map(|&(n, _)| n as ActionIdx).collect();
                        cycle.reverse();
                        cycles.push(cycle);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_dependencies_then_file_order() {
        let deps = vec![vec![2], vec![], vec![1], vec![]];
        assert_eq!(topological_order(&deps), Ok(vec![1, 2, 0, 3]));
    }

    #[test]
    fn reports_a_cycle_path() {
        // 0 depends on 2, 1 on 0, 2 on 1: 0 → 1 → 2 → 0 in "needed by" terms.
        let deps = vec![vec![2], vec![0], vec![1], vec![]];
        let cycles = topological_order(&deps).expect_err("cyclic");
        assert_eq!(cycles.len(), 1);
        let cycle = &cycles[0];
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
    fn self_loop_is_a_cycle() {
        let cycles = topological_order(&[vec![0]]).expect_err("cyclic");
        assert_eq!(cycles, vec![vec![0]]);
    }
}
