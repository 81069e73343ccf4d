//! Scenario scripts: a small text format that says which calls to start when.
//!
//! One call per line: simulated seconds after the script starts, the scenario name, then
//! optional `key=value` parameters (`caller`, `name`, `did`, `agent`) and the flag `await`
//! (a transfer scenario waits for the client's transfer action). Values with spaces are quoted.
//! `#` starts a comment.
//!
//! ```text
//! # a morning at the sales desk
//! 0    queue_answered  caller=+79161234567 name="Ivan Petrov"
//! 2.5  click_to_call   agent=102 caller=+79161234567
//! 4    blind_transfer  await
//! ```
//!
//! Parsing is pure; playing a script is [`crate::SimulatorHandle::play_script`].

use std::time::Duration;

use crate::scenario::{CallParams, Scenario, TransferTrigger};

/// A parsed script, steps in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    pub steps: Vec<ScriptStep>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStep {
    /// Simulated time after the script starts.
    pub at: Duration,
    pub scenario: Scenario,
    pub params: CallParams,
}

/// A line of a script that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("script line {line}: {message}")]
pub struct ScriptError {
    pub line: usize,
    pub message: String,
}

impl Script {
    pub fn parse(text: &str) -> Result<Script, ScriptError> {
        let mut steps = Vec::new();
        for (idx, raw_line) in text.lines().enumerate() {
            let line_no = idx + 1;
            let err = |message: String| ScriptError {
                line: line_no,
                message,
            };
            let line = strip_comment(raw_line);
            let words = split_words(line).map_err(err)?;
            let Some((at, rest)) = words.split_first() else {
                continue;
            };
            let at: f64 = at
                .parse()
                .ok()
                .filter(|t: &f64| t.is_finite() && *t >= 0.0)
                .ok_or_else(|| err(format!("{at:?} is not a time in seconds")))?;
            let Some((name, options)) = rest.split_first() else {
                return Err(err("a scenario name must follow the time".into()));
            };
            let scenario = Scenario::from_name(name).ok_or_else(|| {
                let known: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
                err(format!(
                    "unknown scenario {name:?} (known: {})",
                    known.join(", ")
                ))
            })?;
            let mut params = CallParams::default();
            for option in options {
                if option == "await" {
                    params.transfer = TransferTrigger::AwaitAction;
                    continue;
                }
                let Some((key, value)) = option.split_once('=') else {
                    return Err(err(format!("{option:?} is not key=value")));
                };
                let value = Some(value.to_owned());
                match key {
                    "caller" => params.caller = value,
                    "name" => params.caller_name = value,
                    "did" => params.did = value,
                    "agent" => params.agent = value,
                    _ => return Err(err(format!("unknown parameter {key:?}"))),
                }
            }
            steps.push(ScriptStep {
                at: Duration::from_secs_f64(at),
                scenario,
                params,
            });
        }
        steps.sort_by_key(|s| s.at);
        Ok(Script { steps })
    }
}

fn strip_comment(line: &str) -> &str {
    // A '#' inside quotes is part of a value.
    let mut in_quotes = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if !in_quotes => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Splits on whitespace; `"..."` groups words and the quotes are removed.
fn split_words(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut in_quotes = false;
    for c in line.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                in_word = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_quotes {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_steps_parameters_and_comments() {
        let script = Script::parse(
            "# demo\n\
             2.5 click_to_call agent=102 caller=+79161234567\n\
             \n\
             0 queue_answered caller=+79161234567 name=\"Ivan # Petrov\"  # first\n\
             4 blind_transfer await\n",
        )
        .expect("parses");
        assert_eq!(script.steps.len(), 3);
        assert_eq!(script.steps[0].scenario, Scenario::QueueAnswered);
        assert_eq!(
            script.steps[0].params.caller_name.as_deref(),
            Some("Ivan # Petrov")
        );
        assert_eq!(script.steps[1].at, Duration::from_millis(2500));
        assert_eq!(script.steps[1].params.agent.as_deref(), Some("102"));
        assert_eq!(
            script.steps[2].params.transfer,
            TransferTrigger::AwaitAction
        );
    }

    #[test]
    fn reports_the_line_of_an_error() {
        let cases = [
            ("0 queue_answerd", 1, "unknown scenario"),
            ("\nsoon queue_answered", 2, "not a time"),
            ("1", 1, "scenario name must follow"),
            ("1 hold_moh color=red", 1, "unknown parameter"),
            ("1 hold_moh name=\"open", 1, "unterminated quote"),
            ("-1 hold_moh", 1, "not a time"),
        ];
        for (text, line, needle) in cases {
            let e = Script::parse(text).expect_err(text);
            assert_eq!(e.line, line, "{text}");
            assert!(e.message.contains(needle), "{text}: {}", e.message);
        }
    }
}
