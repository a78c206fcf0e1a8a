//! The docs cannot drift from the CLI: every `job-node` command line in a
//! code block of README.md and docs/*.md must parse with the real command
//! line definition (`job_node::Cli`), and every flag of a synopsis line
//! (`job-node demo [--nodes N] ...`) must exist on its subcommand.
//!
//! A line counts when its first word (after an optional `$ ` prompt and
//! `VAR=value` assignments) is `job-node`, or when it is `cargo run ... -p
//! job-node -- ARGS`. Continuation lines (`\`) are joined; `# comments` and
//! output blocks (`text`) are ignored.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Parser};
use job_node::Cli;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// Splits a shell line into words: single and double quotes, backslash
/// escapes outside single quotes, `#` starting a comment at a word start.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => word.extend(chars.next()),
                        _ => word.push(q),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.extend(chars.next());
            }
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

/// A `job-node` command found in a document.
struct DocCommand {
    file: String,
    line: usize,
    text: String,
    /// The arguments after the program name.
    args: Vec<String>,
    /// Variables `export`ed earlier in the same code block.
    env: Vec<(String, String)>,
}

/// The words of one command: up to a pipe or `&&`/`;`, without
/// redirections (`> file`, `2>&1`, `< file`).
fn command_words(words: Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip_next = false;
    for w in words {
        if skip_next {
            skip_next = false;
            continue;
        }
        match w.as_str() {
            "|" | "&&" | ";" | "||" => break,
            ">" | ">>" | "<" | "2>" | "2>>" => skip_next = true,
            _ if w.starts_with('>') || w.starts_with("2>") || w.starts_with('<') => {}
            _ => out.push(w),
        }
    }
    out
}

/// The `job-node` commands in the code blocks of `text`.
fn commands_in(file: &str, text: &str) -> Vec<DocCommand> {
    let mut found = Vec::new();
    let mut in_block = false;
    let mut output_block = false;
    let mut pending: Option<(usize, String)> = None;
    let mut env: Vec<(String, String)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            in_block = !in_block;
            output_block = in_block && matches!(info.trim(), "text" | "json" | "toml" | "rust");
            pending = None;
            env.clear();
            continue;
        }
        if !in_block || output_block {
            continue;
        }
        let (start, mut joined) = pending.take().unwrap_or((i + 1, String::new()));
        let line = trimmed.strip_prefix("$ ").unwrap_or(trimmed);
        if let Some(head) = line.trim_end().strip_suffix('\\') {
            joined.push_str(head);
            joined.push(' ');
            pending = Some((start, joined));
            continue;
        }
        joined.push_str(line);
        let words = command_words(shell_words(&joined));
        if words.first().is_some_and(|w| w == "export") {
            env.extend(words[1..].iter().filter_map(|w| {
                let (k, v) = w.split_once('=')?;
                Some((k.to_owned(), v.to_owned()))
            }));
            continue;
        }
        let mut rest = words
            .iter()
            .skip_while(|w| w.contains('=') && !w.starts_with('-'))
            .cloned();
        let args: Option<Vec<String>> = match rest.next().as_deref() {
            Some("job-node") => Some(rest.collect()),
            Some("cargo") => {
                let all: Vec<String> = rest.collect();
                let is_node = all.windows(2).any(|w| w[0] == "-p" && w[1] == "job-node");
                let run = all.first().is_some_and(|w| w == "run");
                match all.iter().position(|w| w == "--") {
                    Some(dash) if is_node && run => Some(all[dash + 1..].to_vec()),
                    _ => None,
                }
            }
            _ => None,
        };
        if let Some(args) = args {
            found.push(DocCommand {
                file: file.to_owned(),
                line: start,
                text: joined.trim().to_owned(),
                args,
                env: env.clone(),
            });
        }
    }
    found
}

fn documents() -> Vec<(String, String)> {
    let root = repo_root();
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
            (name, std::fs::read_to_string(&p).expect("readable doc"))
        })
        .collect()
}

/// A synopsis line: placeholders (`[--nodes N]`, `INPUT...`) instead of values.
fn is_synopsis(args: &[String]) -> bool {
    args.iter()
        .any(|a| a.starts_with('[') || a.ends_with(']') || a.contains("..."))
}

/// Checks that every `--flag` of a synopsis line exists on its subcommand.
fn check_synopsis(args: &[String]) -> Result<(), String> {
    let mut command = Cli::command();
    let mut flags = Vec::new();
    for arg in args {
        let word = arg.trim_matches(|c| c == '[' || c == ']');
        if let Some(flag) = word.strip_prefix("--") {
            flags.push(flag.split('=').next().unwrap_or(flag).to_owned());
        } else if flags.is_empty()
            && !word.is_empty()
            && word.chars().all(|c| c.is_ascii_lowercase())
        {
            match command.find_subcommand(word) {
                Some(sub) => command = sub.clone(),
                None => return Err(format!("no subcommand {word:?}")),
            }
        }
    }
    let known: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .chain(["help".to_owned()])
        .collect();
    match flags.iter().find(|f| !known.contains(f)) {
        Some(flag) => Err(format!("unknown flag --{flag} (known: {known:?})")),
        None => Ok(()),
    }
}

/// `args` plus, for each exported variable that a flag of the subcommand
/// reads (`JOBMESH_CLUSTER` for `--cluster`), that flag, unless given: what
/// the shell's environment does for the real binary.
fn with_exported(args: &[String], env: &[(String, String)]) -> Vec<String> {
    let mut args = args.to_vec();
    let root = Cli::command();
    let Some(sub) = args.first().and_then(|name| root.find_subcommand(name)) else {
        return args;
    };
    let mut extra = Vec::new();
    for (key, value) in env {
        let flag = sub
            .get_arguments()
            .find(|a| a.get_env().is_some_and(|e| e == key.as_str()));
        if let Some(long) = flag.and_then(|a| a.get_long()) {
            let given = args.iter().any(|a| {
                a.strip_prefix("--")
                    .is_some_and(|f| f == long || f.starts_with(&format!("{long}=")))
            });
            if !given {
                extra.push(format!("--{long}={value}"));
            }
        }
    }
    args.splice(1..1, extra);
    args
}

#[test]
fn every_documented_command_parses() {
    let mut commands = Vec::new();
    for (file, text) in documents() {
        commands.extend(commands_in(&file, &text));
    }
    // The README's own set-up and cluster commands are in there.
    assert!(
        commands.len() >= 10,
        "found only {} job-node commands in the docs; is the scanner broken?",
        commands.len()
    );
    let mut failures = Vec::new();
    for cmd in &commands {
        let outcome = if is_synopsis(&cmd.args) {
            check_synopsis(&cmd.args)
        } else {
            let args = with_exported(&cmd.args, &cmd.env);
            let argv = std::iter::once("job-node".to_owned()).chain(args);
            Cli::try_parse_from(argv)
                .map(|_| ())
                .map_err(|e| {
                    // `--help` and `--version` are "errors" that print; they parse.
                    match e.kind() {
                        clap::error::ErrorKind::DisplayHelp
                        | clap::error::ErrorKind::DisplayVersion => String::new(),
                        _ => e.to_string(),
                    }
                })
                .or_else(|e| if e.is_empty() { Ok(()) } else { Err(e) })
        };
        if let Err(err) = outcome {
            failures.push(format!(
                "{}:{}: `{}`\n    {}",
                cmd.file,
                cmd.line,
                cmd.text,
                err.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} documented commands do not match the CLI:\n{}",
        failures.len(),
        commands.len(),
        failures.join("\n")
    );
}

#[test]
fn the_scanner_reads_prompts_continuations_comments_and_cargo_run() {
    let doc = "```sh\n$ JOBMESH_NAME=a job-node start --listen 127.0.0.1:0 \\\n    --join ws://x:1   # note\ncargo run --release -p job-node -- demo --jobs 10\ncargo test --workspace\n```\n```text\njob-node not a command here\n```\n";
    let found = commands_in("x.md", doc);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].line, 2);
    assert_eq!(
        found[0].args,
        ["start", "--listen", "127.0.0.1:0", "--join", "ws://x:1"]
    );
    assert_eq!(found[1].args, ["demo", "--jobs", "10"]);
    let doc =
        "```sh\nexport JOBMESH_CLUSTER=ws://h:1\njob-node status > out.txt 2>&1 | tee x\n```\n";
    let found = commands_in("y.md", doc);
    assert_eq!(found[0].args, ["status"]);
    assert_eq!(
        with_exported(&found[0].args, &found[0].env),
        ["status", "--cluster=ws://h:1"]
    );
    assert_eq!(
        shell_words(r#"submit --data '{"a": 1}' --x "b c" # c"#),
        ["submit", "--data", r#"{"a": 1}"#, "--x", "b c"]
    );
    assert!(check_synopsis(&["demo".into(), "[--nodes".into(), "3]".into()]).is_ok());
    assert!(check_synopsis(&["demo".into(), "[--no-such-flag".into(), "3]".into()]).is_err());
}

/// docs/cli.md documents every subcommand: each has a `## \`job-node NAME`
/// heading (alone or in a shared heading such as `get`, `watch`, `cancel`)
/// and a line in the command list at its top. Hidden ones (`bench-echo`,
/// which `bench` starts for itself) are internal, not documented commands.
#[test]
fn every_subcommand_has_a_section_in_cli_md() {
    let text = std::fs::read_to_string(repo_root().join("docs/cli.md")).expect("docs/cli.md");
    let headings: Vec<&str> = text.lines().filter(|l| l.starts_with("## ")).collect();
    let mut missing = Vec::new();
    for sub in Cli::command()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
    {
        let name = sub.get_name();
        let in_heading = headings
            .iter()
            .any(|h| h.contains(&format!("`job-node {name}`")) || h.contains(&format!("`{name}`")));
        let listed = text
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("{name} ")));
        if !in_heading || !listed {
            missing.push(format!("{name} (heading: {in_heading}, listed: {listed})"));
        }
    }
    assert!(missing.is_empty(), "docs/cli.md lacks: {missing:?}");
}
