//! The documentation as users copy from it: every workflow in the README and `docs/` is one
//! GitHub accepts (checked by action-validator, which `scripts/test` installs) and its
//! `permissions` grant what its steps use and no write they do not; every relative link leads
//! to a file (and heading) that exists; the README's first screen is the user's workflow.
//! No server is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_norway::Value;

/// How many lines of the README a reader sees before scrolling.
const FIRST_SCREEN_LINES: usize = 40;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pages users read: the README, CONTRIBUTING.md and every `docs/*.md`.
fn documents() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("CONTRIBUTING.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    assert!(!docs.is_empty(), "docs/ holds no page");
    pages.extend(docs);
    pages
}

/// A page's path relative to the repository, for messages.
fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A fenced code block of a page.
struct Block {
    /// `README.md:39`: the page and the line of the opening fence.
    place: String,
    /// The 1-based lines of the opening and the closing fence.
    opens: usize,
    closes: usize,
    /// The info string, e.g. `yaml`.
    language: String,
    /// The content, with the fence's indentation taken off every line.
    text: String,
}

/// The fenced blocks of a page (backtick fences, possibly indented inside a list item), and
/// its other lines (those outside every block) with their line numbers.
fn parse_page(path: &Path) -> (Vec<Block>, Vec<(usize, String)>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut blocks = Vec::new();
    let mut prose = Vec::new();
    let mut open: Option<(usize, usize, String, Vec<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None if trimmed.starts_with("```") => {
                let language = trimmed.trim_start_matches('`').trim().to_owned();
                open = Some((number, indent, language, Vec::new()));
            }
            None => prose.push((number, line.to_owned())),
            Some((opens, _, language, lines)) if trimmed.trim_end() == "```" => {
                blocks.push(Block {
                    place: format!("{}:{opens}", shown(path)),
                    opens: *opens,
                    closes: number,
                    language: language.clone(),
                    text: lines.join("\n") + "\n",
                });
                open = None;
            }
            Some((_, fence_indent, _, lines)) => {
                let cut = line
                    .char_indices()
                    .take_while(|(i, c)| *i < *fence_indent && *c == ' ')
                    .count();
                lines.push(line[cut..].to_owned());
            }
        }
    }
    assert!(
        open.is_none(),
        "{}: a code block is never closed",
        shown(path)
    );
    (blocks, prose)
}

/// What a `yaml` block is.
enum Yaml {
    /// A whole workflow (it has `jobs`).
    Workflow(Value),
    /// A list of steps, shown to be put into a job.
    Steps(Value),
}

fn classify(block: &Block) -> Yaml {
    let value: Value = serde_norway::from_str(&block.text)
        .unwrap_or_else(|e| panic!("{}: the yaml block does not parse: {e}", block.place));
    if value.get("jobs").is_some() {
        return Yaml::Workflow(value);
    }
    let is_step = |step: &Value| step.get("uses").is_some() || step.get("run").is_some();
    match value.as_sequence() {
        Some(steps) if !steps.is_empty() && steps.iter().all(is_step) => Yaml::Steps(value),
        _ => panic!(
            "{}: a yaml block must be a whole workflow (with `jobs`) or a list of steps",
            block.place
        ),
    }
}

/// Whether a `yaml` block shows a data file rather than a workflow: its first line is a
/// comment naming the file, outside `.github/workflows/` (e.g. `# .github/vulnerability-ignore.yml`).
/// Such a block must parse; nothing more is asked of it.
fn is_data_file(block: &Block) -> bool {
    let name = block
        .text
        .lines()
        .next()
        .and_then(|first| first.strip_prefix("# "))
        .and_then(|comment| comment.split_whitespace().next())
        .unwrap_or_default();
    let data = Path::new(name)
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("yml") || ext.eq_ignore_ascii_case("yaml"))
        && !name.starts_with(".github/workflows/");
    if data {
        let _: Value = serde_norway::from_str(&block.text)
            .unwrap_or_else(|e| panic!("{}: the yaml block does not parse: {e}", block.place));
    }
    data
}

/// Every `yaml` block of every page that shows a workflow or its steps.
fn yaml_blocks() -> Vec<(Block, Yaml)> {
    documents()
        .iter()
        .flat_map(|page| parse_page(page).0)
        .filter(|block| block.language == "yaml" || block.language == "yml")
        .filter(|block| !is_data_file(block))
        .map(|block| {
            let yaml = classify(&block);
            (block, yaml)
        })
        .collect()
}

/// A list of steps as the one job of a workflow, so that the schema checks the steps too.
fn wrap_steps(steps: &Value) -> Value {
    let text =
        "on: push\npermissions: {}\njobs:\n  steps:\n    runs-on: ubuntu-24.04\n    steps: []\n";
    let mut workflow: Value = serde_norway::from_str(text).unwrap();
    workflow["jobs"]["steps"]["steps"] = steps.clone();
    workflow
}

fn action_validator() -> PathBuf {
    let path = root().join(".testbed/tools/bin/action-validator");
    assert!(
        path.is_file(),
        "`{}` is missing: `scripts/test` installs it, or run `cargo install --locked \
         action-validator --version '^0.9' --root .testbed/tools`",
        path.display()
    );
    path
}

#[test]
fn every_workflow_in_the_docs_passes_action_validator() {
    let validator = action_validator();
    let folder = tempfile::tempdir().unwrap();
    let mut workflows = 0;
    for (block, yaml) in yaml_blocks() {
        let workflow = match yaml {
            Yaml::Workflow(workflow) => {
                workflows += 1;
                workflow
            }
            Yaml::Steps(steps) => wrap_steps(&steps),
        };
        // action-validator picks the workflow schema for any name but `action.y[a]ml`.
        let file = folder
            .path()
            .join(format!("{}.yml", block.place.replace(['/', ':', '.'], "-")));
        std::fs::write(&file, serde_norway::to_string(&workflow).unwrap()).unwrap();
        let out = std::process::Command::new(&validator)
            .arg(&file)
            .current_dir(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: action-validator refuses the workflow:\n{}{}",
            block.place,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(workflows >= 8, "only {workflows} workflows in the docs");
}

/// The permission scopes a job's steps need written, and those it needs read.
#[derive(Default)]
struct Needs {
    write: BTreeMap<&'static str, String>,
    read: BTreeMap<&'static str, String>,
}

fn text<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// Whether the workflow runs on a tag or a release, where the action also writes the
/// release notes.
fn runs_on_tags(workflow: &Value) -> bool {
    let on = &workflow["on"];
    let push_tags = on
        .get("push")
        .is_some_and(|push| push.get("tags").is_some());
    push_tags || on.get("release").is_some()
}

fn needs_of(workflow: &Value, job: &Value) -> Needs {
    let mut needs = Needs::default();
    for step in job["steps"].as_sequence().into_iter().flatten() {
        let uses = text(step, "uses").unwrap_or_default();
        let with = &step["with"];
        if uses.starts_with("actions/checkout@") {
            needs.read.insert("contents", "actions/checkout".into());
        }
        if uses.starts_with("aws-actions/configure-aws-credentials@")
            && with.get("role-to-assume").is_some()
            && with.get("aws-access-key-id").is_none()
        {
            needs.write.insert(
                "id-token",
                "configure-aws-credentials to assume the role with OIDC".into(),
            );
        }
        if uses.contains("/ecr-multiarch@") {
            // A platform-only run tells GitHub nothing; the other runs use the token.
            let platform_only = match &with["platform-only"] {
                Value::Bool(b) => *b,
                Value::String(s) => s == "true",
                _ => false,
            };
            let default_token = match with.get("github-token") {
                None => true,
                Some(token) => {
                    let token = token.as_str().unwrap_or_default().replace(' ', "");
                    token == "${{github.token}}" || token == "${{secrets.GITHUB_TOKEN}}"
                }
            };
            if default_token && !platform_only {
                needs.write.insert(
                    "statuses",
                    "the action's commit status with the default `github-token`".into(),
                );
                if runs_on_tags(workflow) {
                    needs.write.insert(
                        "contents",
                        "the action's section of the release notes, on a tag".into(),
                    );
                }
            }
        }
    }
    needs
}

/// The level a `permissions` value grants a scope: `write`, `read` or `none`.
fn granted(permissions: &Value, scope: &str) -> String {
    match permissions {
        Value::String(all) if all == "write-all" => "write".into(),
        Value::String(all) if all == "read-all" => "read".into(),
        Value::Mapping(_) => text(permissions, scope).unwrap_or("none").to_owned(),
        _ => "none".into(),
    }
}

/// Whether a `permissions` value grants `write` to a scope by name (not through `write-all`).
fn written_scopes(permissions: &Value) -> Vec<String> {
    permissions
        .as_mapping()
        .into_iter()
        .flatten()
        .filter(|(_, level)| level.as_str() == Some("write"))
        .map(|(scope, _)| scope.as_str().unwrap().to_owned())
        .collect()
}

/// What a workflow's `permissions` lack for its steps, or grant for writing that no step uses.
fn permission_problems(place: &str, workflow: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let top = workflow.get("permissions");
    // The write scopes needed by the jobs that take the workflow's `permissions`.
    let mut used_top: BTreeSet<String> = BTreeSet::new();
    for (name, job) in workflow["jobs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        let needs = needs_of(workflow, job);
        // A job's own `permissions` replace the workflow's.
        let Some(permissions) = job.get("permissions").or(top) else {
            problems.push(format!(
                "{place}: job `{name}` has no `permissions` (the token's default depends on the \
                 repository's settings)"
            ));
            continue;
        };
        for (scope, why) in &needs.write {
            if granted(permissions, scope) != "write" {
                problems.push(format!(
                    "{place}: job `{name}` needs `{scope}: write` for {why}"
                ));
            }
        }
        for (scope, why) in &needs.read {
            if granted(permissions, scope) == "none" {
                problems.push(format!(
                    "{place}: job `{name}` needs `{scope}: read` for {why}"
                ));
            }
        }
        let scopes: BTreeSet<String> = needs.write.keys().map(|s| (*s).to_owned()).collect();
        if let Some(own) = job.get("permissions") {
            for scope in written_scopes(own) {
                if !scopes.contains(&scope) {
                    problems.push(format!(
                        "{place}: job `{name}` grants `{scope}: write` that no step uses"
                    ));
                }
            }
        } else {
            used_top.extend(scopes);
        }
    }
    for scope in top.map(written_scopes).unwrap_or_default() {
        if !used_top.contains(&scope) {
            problems.push(format!(
                "{place}: the workflow grants `{scope}: write` that no job uses"
            ));
        }
    }
    problems
}

#[test]
fn every_workflow_in_the_docs_grants_the_permissions_its_steps_use() {
    let mut problems = Vec::new();
    for (block, yaml) in yaml_blocks() {
        if let Yaml::Workflow(workflow) = yaml {
            problems.extend(permission_problems(&block.place, &workflow));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The workflows the README showed before issue 15, each with what was missing.
#[test]
fn the_permission_check_finds_what_the_old_readme_lacked() {
    let steps = "
    steps:
      - uses: actions/checkout@v4
      - uses: aws-actions/configure-aws-credentials@v4
        with: { role-to-assume: arn:aws:iam::123456789012:role/push, aws-region: us-east-1 }
      - uses: OWNER/ecr-multiarch@v1
        with: { repository: team/api }
";
    let check = |head: &str| {
        let text = format!("{head}\njobs:\n  image:\n    runs-on: ubuntu-24.04{steps}");
        permission_problems("example", &serde_norway::from_str(&text).unwrap())
    };
    // The basic workflow: no `statuses: write` for the default token's commit status.
    assert_eq!(
        check("on: push\npermissions: { id-token: write, contents: read }"),
        [
            "example: job `image` needs `statuses: write` for the action's commit status with the \
          default `github-token`"
        ]
    );
    // The release-tag workflow: no `permissions` at all.
    assert_eq!(
        check("on: { push: { tags: [\"v*\"] } }"),
        [
            "example: job `image` has no `permissions` (the token's default depends on the \
          repository's settings)"
        ]
    );
    // A job's own block replaces the workflow's: `id-token` must be in it.
    let text = format!(
        "on: {{ push: {{ tags: [\"v*\"] }} }}\npermissions: {{ id-token: write }}\njobs:\n  image:\n    \
         runs-on: ubuntu-24.04\n    permissions: {{ contents: write, statuses: write, packages: write }}{steps}"
    );
    assert_eq!(
        permission_problems("example", &serde_norway::from_str(&text).unwrap()),
        [
            "example: job `image` needs `id-token: write` for configure-aws-credentials to assume \
             the role with OIDC",
            "example: job `image` grants `packages: write` that no step uses",
            "example: the workflow grants `id-token: write` that no job uses",
        ]
    );
    // The README's block today: nothing missing, nothing extra.
    assert_eq!(
        check("on: push\npermissions: { id-token: write, contents: read, statuses: write }"),
        Vec::<String>::new()
    );
}

#[test]
fn every_json_block_in_the_docs_parses() {
    for page in documents() {
        for block in parse_page(&page).0 {
            if block.language == "json" {
                serde_json::from_str::<serde_json::Value>(&block.text).unwrap_or_else(|e| {
                    panic!("{}: the json block does not parse: {e}", block.place)
                });
            }
        }
    }
}

/// The anchors GitHub gives a page's headings: lowercase, punctuation dropped, spaces as
/// hyphens, and `-1`, `-2`... for repeats.
fn anchors(path: &Path) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    for (_, line) in parse_page(path).1 {
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        let heading = heading.trim_start_matches('#').trim();
        let slug: String = heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let count = seen.entry(slug.clone()).or_insert(0);
        anchors.insert(if *count == 0 {
            slug.clone()
        } else {
            format!("{slug}-{count}")
        });
        *count += 1;
    }
    anchors
}

/// A line with its code spans (a run of backticks to the next run of as many) blanked out.
fn without_code_spans(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    let run_at = |i: usize| chars[i..].iter().take_while(|c| **c == '`').count();
    let mut kept = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '`' {
            kept.push(chars[i]);
            i += 1;
            continue;
        }
        let run = run_at(i);
        let mut end = i + run;
        let mut closed = None;
        while end < chars.len() {
            if chars[end] == '`' {
                let other = run_at(end);
                if other == run {
                    closed = Some(end + other);
                    break;
                }
                end += other;
            } else {
                end += 1;
            }
        }
        if let Some(after) = closed {
            kept.push(' ');
            i = after;
        } else {
            // An unclosed run is literal text.
            kept.extend(&chars[i..i + run]);
            i += run;
        }
    }
    kept
}

/// The link targets of a line outside code: `[text](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let outside_code = without_code_spans(line);
    let mut targets = Vec::new();
    let mut rest = outside_code.as_str();
    while let Some(start) = rest.find("](") {
        rest = &rest[start + 2..];
        let end = rest.find(')').unwrap_or(rest.len());
        let target = rest[..end].split_whitespace().next().unwrap_or_default();
        targets.push(target.to_owned());
        rest = &rest[end..];
    }
    targets
}

#[test]
fn every_relative_link_in_the_docs_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in documents() {
        for (number, line) in parse_page(&page).1 {
            for target in link_targets(&line) {
                if target.contains("://") || target.starts_with("mailto:") {
                    continue;
                }
                checked += 1;
                let place = format!("{}:{number}", shown(&page));
                let (file, anchor) = target.split_once('#').unwrap_or((target.as_str(), ""));
                let file = if file.is_empty() {
                    page.clone()
                } else {
                    page.parent().unwrap().join(file)
                };
                if !file.exists() {
                    broken.push(format!("{place}: `{target}`: no such file"));
                    continue;
                }
                let is_page = file.extension().is_some_and(|e| e == "md");
                if !anchor.is_empty() && is_page && !anchors(&file).contains(anchor) {
                    broken.push(format!(
                        "{place}: `{target}`: `{}` has no heading `#{anchor}`",
                        shown(&file)
                    ));
                }
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
    assert!(checked >= 20, "only {checked} relative links in the docs");
}

#[test]
fn the_readme_opens_with_the_users_workflow() {
    let (blocks, _) = parse_page(&root().join("README.md"));
    let first = blocks
        .iter()
        .find(|block| block.language == "yaml")
        .expect("the README shows a workflow");
    assert!(
        first.closes <= FIRST_SCREEN_LINES,
        "the README's first workflow runs from line {} to {}: it should fit in the first {} lines",
        first.opens,
        first.closes,
        FIRST_SCREEN_LINES
    );
    let Yaml::Workflow(workflow) = classify(first) else {
        panic!(
            "{}: the README's first yaml block is not a whole workflow",
            first.place
        );
    };
    let uses_action = workflow["jobs"]
        .as_mapping()
        .unwrap()
        .values()
        .flat_map(|job| job["steps"].as_sequence().into_iter().flatten())
        .any(|step| text(step, "uses").is_some_and(|u| u.contains("/ecr-multiarch@")));
    assert!(
        uses_action,
        "{}: the README's first workflow does not use the action",
        first.place
    );
}
