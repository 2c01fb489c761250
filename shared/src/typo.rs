//! The nearest known name to a mistyped one, for "did you mean ...?".

/// The name of `known` nearest to `word`, if it is close enough to be a typo of it.
pub fn nearest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::damerau_levenshtein(word, k), k))
        .min()
        .filter(|(distance, k)| *distance <= 2.max(k.len() / 4))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_and_strangers() {
        assert_eq!(
            nearest("multline_start", ["multiline_start", "topic"]),
            Some("multiline_start")
        );
        assert_eq!(nearest("zzz", ["multiline_start", "topic"]), None);
    }
}
