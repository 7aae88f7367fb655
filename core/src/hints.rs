//! "Did you mean" hints: the closest of some known names to a misspelt one.

/// ` (did you mean "x"?)` when a candidate is close to `word`.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<String> {
    suggest(word, candidates).map(|s| format!(" (did you mean \"{s}\"?)"))
}

/// The closest candidate within a small edit distance, for "did you mean" hints.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut a: Vec<char> = Vec::new();
    let mut b: Vec<char> = Vec::new();
    let mut rows = [Vec::new(), Vec::new(), Vec::new()];
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates {
        if candidate.len().abs_diff(word.len()) > limit {
            continue;
        }
        if a.is_empty() {
            a.extend(word.chars());
        }
        b.clear();
        b.extend(candidate.chars());
        if let Some(d) = distance_within(&a, &b, limit, &mut rows) {
            // Ties go to the first candidate.
            if best.is_none_or(|(closest, _)| d < closest) {
                best = Some((d, candidate));
            }
        }
    }
    best.map(|(_, c)| c)
}

/// Optimal-string-alignment distance (edits plus adjacent transpositions: "biuld" → "build" is
/// one), or `None` as soon as it must exceed `limit`. `rows` are reused buffers.
fn distance_within(
    a: &[char],
    b: &[char],
    limit: usize,
    rows: &mut [Vec<usize>; 3],
) -> Option<usize> {
    let [before, previous, current] = rows;
    previous.clear();
    previous.extend(0..=b.len());
    for i in 1..=a.len() {
        current.clear();
        current.push(i);
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current.push(best);
        }
        // A row's minimum never decreases further down, so this one decides.
        if current.iter().min().is_some_and(|&m| m > limit) {
            return None;
        }
        std::mem::swap(before, previous);
        std::mem::swap(previous, current);
    }
    previous.last().copied().filter(|&d| d <= limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("biuld", ["build", "test"].into_iter()),
            Some("build")
        );
        assert_eq!(suggest("zzzzz", ["build", "test"].into_iter()), None);
    }
}
