//! Full-text search over tasks: what a user types into `q`, read the way PostgreSQL's
//! `websearch_to_tsquery` reads it, so that both backends find the same tasks.
//!
//! PostgreSQL is handed the text as typed (`websearch_to_tsquery('english', q)` never fails
//! and never takes anything for an operator but its own). SQLite's FTS5 has a query
//! language of its own (`*`, `NEAR`, `AND`, `col:`, `^`, …), so the text is read here
//! instead and written out as an FTS5 query in which every term is a quoted string of
//! letters and digits: nothing the user typed can be an FTS5 operator.
//!
//! What is understood, as by `websearch_to_tsquery`: words (all of them must match),
//! `"quoted phrases"` (an unbalanced quote runs to the end), `-word` and `-"a phrase"`
//! (must not match), and `or` between alternatives (`a b or c` is `(a and b) or c`).
//! Any other character that is neither a letter nor a digit (parentheses, `*`, `:`, …)
//! separates words. English stop words are left
//! out, as PostgreSQL's `english` configuration leaves them out (inside a quoted phrase
//! they stay, holding their place).

/// PostgreSQL's `english` stop words (`tsearch_data/english.stop`): PostgreSQL ignores
/// them, in texts and in queries.
const STOP_WORDS: &[&str] = &[
    "i",
    "me",
    "my",
    "myself",
    "we",
    "our",
    "ours",
    "ourselves",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
    "he",
    "him",
    "his",
    "himself",
    "she",
    "her",
    "hers",
    "herself",
    "it",
    "its",
    "itself",
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "what",
    "which",
    "who",
    "whom",
    "this",
    "that",
    "these",
    "those",
    "am",
    "is",
    "are",
    "was",
    "were",
    "be",
    "been",
    "being",
    "have",
    "has",
    "had",
    "having",
    "do",
    "does",
    "did",
    "doing",
    "a",
    "an",
    "the",
    "and",
    "but",
    "if",
    "or",
    "because",
    "as",
    "until",
    "while",
    "of",
    "at",
    "by",
    "for",
    "with",
    "about",
    "against",
    "between",
    "into",
    "through",
    "during",
    "before",
    "after",
    "above",
    "below",
    "to",
    "from",
    "up",
    "down",
    "in",
    "out",
    "on",
    "off",
    "over",
    "under",
    "again",
    "further",
    "then",
    "once",
    "here",
    "there",
    "when",
    "where",
    "why",
    "how",
    "all",
    "any",
    "both",
    "each",
    "few",
    "more",
    "most",
    "other",
    "some",
    "such",
    "no",
    "nor",
    "not",
    "only",
    "own",
    "same",
    "so",
    "than",
    "too",
    "very",
    "s",
    "t",
    "can",
    "will",
    "just",
    "don",
    "should",
    "now",
];

fn is_stop_word(token: &str) -> bool {
    STOP_WORDS.contains(&token)
}

/// A validated search: the text as typed, and its FTS5 form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextSearch {
    text: String,
    include: Option<String>,
    exclude: Option<String>,
}

/// One term of the query: a word or a quoted phrase, as its tokens (letters and digits).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Term {
    tokens: Vec<String>,
    negated: bool,
}

impl Term {
    /// The term as PostgreSQL would keep it: `None` when nothing of it is left (only
    /// stop words, or no letters or digits at all).
    fn new(text: &str, negated: bool, phrase: bool) -> Option<Self> {
        let tokens: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
            .collect();
        if tokens.iter().all(|t| is_stop_word(t)) {
            return None;
        }
        let tokens = if phrase {
            tokens
        } else {
            // A word such as "cat's" or "x-ray": PostgreSQL drops its stop words too.
            tokens.into_iter().filter(|t| !is_stop_word(t)).collect()
        };
        Some(Self { tokens, negated })
    }

    /// An FTS5 string: tokens of letters and digits only, so nothing to escape.
    fn fts5(&self) -> String {
        format!("\"{}\"", self.tokens.join(" "))
    }
}

impl TextSearch {
    /// Reads any text; never fails (a text with no terms matches no task, as in
    /// PostgreSQL).
    pub fn parse(text: &str) -> Self {
        let branches = branches(text);
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for branch in &branches {
            let (neg, pos): (Vec<&Term>, Vec<&Term>) = branch.iter().partition(|t| t.negated);
            let any_of = |terms: &[&Term]| {
                let terms: Vec<String> = terms.iter().map(|t| t.fts5()).collect();
                format!("({})", terms.join(" OR "))
            };
            if pos.is_empty() {
                // "none of these": FTS5 has no unary NOT, so such alternatives are
                // matched as "not (any of these)" (see `fts5_exclude`).
                exclude.push(any_of(&neg));
            } else {
                let all: Vec<String> = pos.iter().map(|t| t.fts5()).collect();
                let all = format!("({})", all.join(" AND "));
                include.push(if neg.is_empty() {
                    all
                } else {
                    format!("({all} NOT {})", any_of(&neg))
                });
            }
        }
        Self {
            text: text.to_string(),
            include: (!include.is_empty()).then(|| include.join(" OR ")),
            // not A or not B = not (A and B)
            exclude: (!exclude.is_empty()).then(|| exclude.join(" AND ")),
        }
    }

    /// Whether anything is left to search for (not only stop words or punctuation): a
    /// search without terms finds nothing.
    pub fn has_terms(&self) -> bool {
        self.include.is_some() || self.exclude.is_some()
    }

    /// The text as typed (for `websearch_to_tsquery`).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The FTS5 query of the alternatives with a term that must match; a task matches
    /// the search if it matches this, or does not match [`Self::fts5_exclude`].
    pub fn fts5_include(&self) -> Option<&str> {
        self.include.as_deref()
    }

    /// The FTS5 query a task must not match, for the alternatives made only of excluded
    /// terms (`-cat`, `a or -b`).
    pub fn fts5_exclude(&self) -> Option<&str> {
        self.exclude.as_deref()
    }
}

/// What ends a word besides a quote: white space, and the characters PostgreSQL's
/// `websearch_to_tsquery` skips between words (its own operators, and `:`).
fn is_separator(c: char) -> bool {
    c.is_whitespace() || matches!(c, '!' | '&' | '|' | '(' | ')' | '<' | ':')
}

/// The alternatives (`or`) of the text, each a list of terms that must all hold; empty
/// ones left out.
fn branches(text: &str) -> Vec<Vec<Term>> {
    let mut branches = Vec::new();
    let mut current: Vec<Term> = Vec::new();
    let mut negated = false;
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if is_separator(c) {
            continue;
        }
        if c == '-' {
            negated = !negated;
            continue;
        }
        if c == '"' {
            let mut end = text.len();
            for (i, c) in chars.by_ref() {
                if c == '"' {
                    end = i;
                    break;
                }
            }
            current.extend(Term::new(&text[start + 1..end], negated, true));
            negated = false;
            continue;
        }
        let mut end = text.len();
        while let Some(&(i, c)) = chars.peek() {
            if is_separator(c) || c == '"' {
                end = i;
                break;
            }
            chars.next();
        }
        let word = &text[start..end];
        if !negated && word.eq_ignore_ascii_case("or") {
            branches.push(std::mem::take(&mut current));
        } else {
            current.extend(Term::new(word, negated, false));
        }
        negated = false;
    }
    branches.push(current);
    branches.retain(|b| !b.is_empty());
    branches
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fts5(text: &str) -> (Option<String>, Option<String>) {
        let search = TextSearch::parse(text);
        (
            search.fts5_include().map(str::to_string),
            search.fts5_exclude().map(str::to_string),
        )
    }

    fn some(include: &str) -> (Option<String>, Option<String>) {
        (Some(include.to_string()), None)
    }

    #[test]
    fn words_phrases_exclusions_and_alternatives() {
        assert_eq!(fts5("cat"), some(r#"("cat")"#));
        assert_eq!(fts5("Cat  dog"), some(r#"("cat" AND "dog")"#));
        assert_eq!(fts5(r#""red car" fish"#), some(r#"("red car" AND "fish")"#));
        assert_eq!(
            fts5("cat -dog fish"),
            some(r#"(("cat" AND "fish") NOT ("dog"))"#)
        );
        assert_eq!(fts5("cat - dog"), some(r#"(("cat") NOT ("dog"))"#));
        assert_eq!(fts5("cat --dog"), some(r#"("cat" AND "dog")"#));
        assert_eq!(
            fts5(r#"cat -"red car""#),
            some(r#"(("cat") NOT ("red car"))"#)
        );
        assert_eq!(
            fts5("cat or dog fish"),
            some(r#"("cat") OR ("dog" AND "fish")"#)
        );
        assert_eq!(fts5("cat OR dog"), some(r#"("cat") OR ("dog")"#));
        assert_eq!(fts5("or cat or or"), some(r#"("cat")"#));
        assert_eq!(fts5("-cat"), (None, Some(r#"("cat")"#.into())));
        assert_eq!(
            fts5("x or -cat -dog or -fish"),
            (
                Some(r#"("x")"#.into()),
                Some(r#"("cat" OR "dog") AND ("fish")"#.into())
            )
        );
        assert_eq!(fts5(r#"cat "dog"#), some(r#"("cat" AND "dog")"#));
        assert_eq!(fts5(r#"cat"dog fish""#), some(r#"("cat" AND "dog fish")"#));
        assert_eq!(fts5("-or cat"), some(r#"("cat")"#));
    }

    #[test]
    fn stop_words_are_left_out_as_postgresql_does() {
        assert_eq!(fts5("the report"), some(r#"("report")"#));
        assert_eq!(fts5("the"), (None, None));
        assert_eq!(fts5("cat's toy"), some(r#"("cat" AND "toy")"#));
        assert_eq!(fts5("don't"), (None, None));
        assert_eq!(fts5("-the cat"), some(r#"("cat")"#));
        assert_eq!(
            fts5(r#"cat "a" or "b" fish"#),
            some(r#"("cat") OR ("b" AND "fish")"#)
        );
        // Inside a phrase they hold their place.
        assert_eq!(fts5(r#""fix the bug""#), some(r#"("fix the bug")"#));
        assert_eq!(fts5(r#""the a""#), (None, None));
    }

    #[test]
    fn operators_and_wildcards_of_fts5_are_plain_text() {
        assert_eq!(fts5("*"), (None, None));
        assert_eq!(fts5(r#"""#), (None, None));
        assert_eq!(fts5(r#""""#), (None, None));
        assert_eq!(fts5("NEAR("), some(r#"("near")"#));
        assert_eq!(fts5("title:x"), some(r#"("title" AND "x")"#));
        assert_eq!(fts5("AND OR NOT"), (None, None));
        assert_eq!(fts5("dog* ^cat"), some(r#"("dog" AND "cat")"#));
        assert_eq!(fts5("c++ (a) {b}"), some(r#"("c" AND "b")"#));
        assert_eq!(fts5("x-ray"), some(r#"("x ray")"#));
    }

    proptest! {
        /// Whatever is typed, the FTS5 text holds only quoted letters and digits, the
        /// operators written here, and balanced parentheses.
        #[test]
        fn fts5_queries_are_made_of_quoted_alphanumerics(text in "\\PC{0,300}") {
            let search = TextSearch::parse(&text);
            for query in [search.fts5_include(), search.fts5_exclude()].into_iter().flatten() {
                let mut rest = query;
                let mut depth = 0i32;
                while let Some(c) = rest.chars().next() {
                    if c == '"' {
                        let end = rest[1..].find('"').expect("closed string") + 1;
                        let inner = &rest[1..end];
                        prop_assert!(!inner.is_empty());
                        prop_assert!(inner.split(' ').all(|t| !t.is_empty() && t.chars().all(char::is_alphanumeric)));
                        rest = &rest[end + 1..];
                        continue;
                    }
                    if let Some(after) = ["AND ", "OR ", "NOT ", " "].iter().find_map(|op| rest.strip_prefix(op)) {
                        rest = after;
                        continue;
                    }
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => prop_assert!(false, "unexpected {:?} in {}", c, query),
                    }
                    prop_assert!(depth >= 0);
                    rest = &rest[1..];
                }
                prop_assert_eq!(depth, 0);
            }
        }
    }
}
