//! Answer extraction and equivalence for generation tasks: GSM8K-style final numbers and
//! MATH-style `\boxed{}` / "The final answer is" answers with Minerva's normalisation.

use std::sync::LazyLock;

use regex::Regex;

static GSM_ANSWER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?i)the answer is\s*:?\s*\$?\s*(-?[0-9][0-9,]*(?:\.[0-9]+)?)").unwrap());
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"-?[0-9][0-9,]*(?:\.[0-9]+)?").unwrap());

/// The number a GSM8K-style chain of thought ends on: the one after "The answer is" when the
/// model says it (lm-evaluation-harness's strict match), otherwise the last number in the text
/// (its flexible match). Commas, `$` and a trailing period are dropped.
pub fn extract_final_number(completion: &str) -> Option<String> {
    let m =
        GSM_ANSWER.captures_iter(completion).last().map(|c| c.get(1).unwrap().as_str()).or_else(|| NUMBER.find_iter(completion).last().map(|m| m.as_str()))?;
    Some(clean_number(m))
}

fn clean_number(s: &str) -> String {
    let s = s.replace([',', '$'], "");
    let s = s.trim().trim_end_matches('.');
    // 18.00 and 18 are the same answer.
    match s.parse::<f64>() {
        Ok(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        _ => s.to_string(),
    }
}

/// Whether a GSM8K prediction equals the gold number (both cleaned the same way).
pub fn numbers_equal(pred: &str, gold: &str) -> bool {
    let (p, g) = (clean_number(pred), clean_number(gold));
    p == g || matches!((p.parse::<f64>(), g.parse::<f64>()), (Ok(a), Ok(b)) if (a - b).abs() <= 1e-6 * b.abs().max(1.0))
}

/// The content of the last `\boxed{...}` (or `\fbox{...}`) in `text`, braces balanced.
pub fn last_boxed(text: &str) -> Option<String> {
    let start = text.rfind("\\boxed").or_else(|| text.rfind("\\fbox"))?;
    let rest = &text[start..];
    if let Some(after) = rest.strip_prefix("\\boxed ") {
        // `\boxed 5`: up to the next `$` or whitespace.
        return Some(after.split(['$', ' ', '\n']).next().unwrap_or("").to_string());
    }
    let open = rest.find('{')?;
    let mut depth = 0usize;
    for (i, c) in rest[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(rest[open + 1..open + i].to_string());
                }
            }
            _ => {}
        }
    }
    None
}

static FINAL_ANSWER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s).*final answer is\s*(.*?)\.\s*I hope it is correct").unwrap());

/// A MATH answer from a Minerva-style solution: "Final Answer: The final answer is X. I hope it
/// is correct." when present, otherwise the last `\boxed{}`.
pub fn extract_math_answer(completion: &str) -> Option<String> {
    if let Some(c) = FINAL_ANSWER.captures(completion) {
        return Some(c[1].trim().to_string());
    }
    last_boxed(completion)
}

const SUBSTITUTIONS: [(&str, &str); 10] = [
    ("an ", ""),
    ("a ", ""),
    (".$", "$"),
    ("\\$", ""),
    ("\\ ", ""),
    (" ", ""),
    ("mbox", "text"),
    (",\\text{and}", ","),
    ("\\text{and}", ","),
    ("\\text{m}", "\\text{}"),
];

const REMOVED_EXPRESSIONS: [&str; 44] = [
    "\\left",
    "\\right",
    "square",
    "ways",
    "integers",
    "dollars",
    "mph",
    "inches",
    "ft",
    "hours",
    "km",
    "units",
    "\\ldots",
    "sue",
    "points",
    "feet",
    "minutes",
    "digits",
    "cents",
    "degrees",
    "cm",
    "gm",
    "pounds",
    "meters",
    "meals",
    "edges",
    "students",
    "childrentickets",
    "multiples",
    "\\text{s}",
    "\\text{.}",
    "\\text{\ns}",
    "\\text{}^2",
    "\\text{}^3",
    "\\text{\n}",
    "\\text{}",
    "\\mathrm{th}",
    "^\\circ",
    "^{\\circ}",
    "\\;",
    ",\\!",
    "{,}",
    "\"",
    "\\dots",
];

static DOLLARS: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)^.*?\$(.*?)\$.*$").unwrap());
static WRAPPERS: LazyLock<Vec<Regex>> =
    LazyLock::new(|| ["text", "textbf", "overline", "mathrm", "mbox"].iter().map(|w| Regex::new(&format!(r"\\{w}\{{(.*?)\}}")).unwrap()).collect());
static BOXED: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)\\boxed\{(.*)\}").unwrap());
static SHORT_FRAC: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"frac([^{])(.)").unwrap());
static SHORT_SQRT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"sqrt([^{])").unwrap());

/// Minerva's `normalize_final_answer` (Lewkowycz et al. 2022, appendix D.1) with `\left` and
/// `\right` removed whole (the original's unit list strips the "ft" out of `\left`): the text
/// after the last `=`, units and spacing dropped, `$...$`, `\text{}`, `\boxed{}` unwrapped,
/// `\fracab` → `\frac{a}{b}`, `\sqrta` → `\sqrt{a}`, `dfrac`/`tfrac` → `frac`, and thousands
/// separators removed from integers.
pub fn normalize_math_answer(answer: &str) -> String {
    let mut s = answer.rsplit('=').next().unwrap_or("").to_string();
    for (from, to) in SUBSTITUTIONS {
        s = s.replace(from, to);
    }
    for e in REMOVED_EXPRESSIONS {
        s = s.replace(e, "");
    }
    s = DOLLARS.replace(&s, "$1").into_owned();
    for re in WRAPPERS.iter() {
        s = re.replace_all(&s, "$1").into_owned();
    }
    s = BOXED.replace(&s, "$1").into_owned();
    s = s.replace("dfrac", "frac").replace("tfrac", "frac");
    s = SHORT_FRAC.replace_all(&s, "frac{$1}{$2}").into_owned();
    s = SHORT_SQRT.replace_all(&s, "sqrt{$1}").into_owned();
    s = s.replace('$', "");
    if !s.is_empty() && s.replace(',', "").chars().all(|c| c.is_ascii_digit()) {
        s = s.replace(',', "");
    }
    s.trim_end_matches('.').to_string()
}

/// The value of a normalised answer that is a plain number, `a/b`, `\frac{a}{b}` (optionally
/// negated) or a percentage, for numeric equivalence.
fn numeric_value(s: &str) -> Option<f64> {
    let s = s.trim().trim_end_matches("\\%").trim_end_matches('%');
    if let Ok(v) = s.parse::<f64>() {
        return Some(v);
    }
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let v = if let Some(frac) = body.strip_prefix("\\frac{") {
        let (num, rest) = frac.split_once("}{")?;
        let den = rest.strip_suffix('}')?;
        num.parse::<f64>().ok()? / den.parse::<f64>().ok()?
    } else if let Some((num, den)) = body.split_once('/') {
        num.parse::<f64>().ok()? / den.parse::<f64>().ok()?
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

/// Whether two MATH answers are the same: equal after normalisation, or both numbers (integers,
/// decimals, fractions) that agree to 1e-6 relative.
pub fn math_equivalent(pred: &str, gold: &str) -> bool {
    let (p, g) = (normalize_math_answer(pred), normalize_math_answer(gold));
    if p == g {
        return true;
    }
    matches!((numeric_value(&p), numeric_value(&g)), (Some(a), Some(b)) if a.is_finite() && (a - b).abs() <= 1e-6 * b.abs().max(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm8k_final_numbers() {
        assert_eq!(extract_final_number("She makes 9 * 2 = $18 every day. So the answer is 18.").as_deref(), Some("18"));
        assert_eq!(extract_final_number("The answer is $1,234.").as_deref(), Some("1234"));
        assert_eq!(extract_final_number("3 + 4 = 7, then 7 * 2 = 14").as_deref(), Some("14"));
        assert_eq!(extract_final_number("So the answer is -3.50").as_deref(), Some("-3.50"));
        // The stated answer wins over a later stray number.
        assert_eq!(extract_final_number("So the answer is 5.\nQuestion 2").as_deref(), Some("5"));
        assert_eq!(extract_final_number("no digits here"), None);
        assert!(numbers_equal("18.00", "18") && numbers_equal("1,000", "1000") && !numbers_equal("17", "18"));
    }

    #[test]
    fn boxed_answers_with_nested_braces() {
        assert_eq!(last_boxed(r"so $\boxed{\frac{1}{2}}$.").as_deref(), Some(r"\frac{1}{2}"));
        assert_eq!(last_boxed(r"\boxed{1} then \boxed{\left( 3, \frac{\pi}{2} \right)}").as_deref(), Some(r"\left( 3, \frac{\pi}{2} \right)"));
        assert_eq!(last_boxed(r"\boxed 5$").as_deref(), Some("5"));
        assert_eq!(last_boxed(r"\boxed{unclosed"), None);
        assert_eq!(last_boxed("nothing"), None);
    }

    #[test]
    fn math_normalisation_and_equivalence() {
        let minerva = "We have $x = 2$, so the final answer is $\\boxed{2}$.\nFinal Answer: The final answer is $-\\frac{2}{3}$. I hope it is correct.";
        assert_eq!(extract_math_answer(minerva).as_deref(), Some("$-\\frac{2}{3}$"));
        assert_eq!(extract_math_answer("thus \\boxed{16}").as_deref(), Some("16"));
        assert!(math_equivalent("$-\\frac{2}{3}$", "-\\frac{2}{3}"));
        assert!(math_equivalent("-\\dfrac{2}{3}", "-\\frac23"));
        assert!(math_equivalent("\\frac{1}{2}", "0.5"));
        assert!(math_equivalent("x = 10", "10"));
        assert!(math_equivalent("5 \\text{ cm}", "5"));
        assert!(math_equivalent("10,000", "10000"));
        assert!(math_equivalent("90^\\circ", "90"));
        assert!(math_equivalent("\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})"));
        assert!(math_equivalent("\\text{(C)}", "(C)"));
        assert!(!math_equivalent("\\frac{1}{3}", "0.33"));
        assert!(!math_equivalent("[2,5)", "[2,5]"));
        assert!(!math_equivalent("2", "3"));
    }
}
