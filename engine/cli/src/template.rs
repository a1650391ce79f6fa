//! Go's `text/template`, the subset Docker users write in `--format` and `inspect -f`,
//! evaluated over the JSON berthd returns (a `serde_json::Value`) instead of Go structs.
//!
//! Supported: text and `{{actions}}` with trim markers and comments; `.`/`$`/`$x` field
//! chains; string, raw string, character, number and boolean literals; pipelines and
//! parenthesised pipelines; variables (`:=`, `=`, range's `$i, $e`), scoped to blocks;
//! `if`/`else if`/`else`, `range` (arrays, objects by sorted key, integers) with
//! `break`/`continue`/`else`, `with`/`else with`/`else`; Go's builtins and Docker's helpers
//! (see `funcs`). Not supported: `define`, `template`, `block` (an error names them), method
//! calls, `call`, `html`, `js`, `urlquery`.
//!
//! Where JSON differs from Docker's Go structs the choice is Go's for decoded JSON: a missing
//! key prints `<no value>` (also through `index`), `null` prints `<nil>`, numbers print as
//! integers when whole. Lenient where Go's strictness would only surprise: `%s` of a
//! non-string prints it as `%v`, `len`/`range`/`index` treat `null` as empty.
//!
//! Everything is bounded: nesting past 100 levels is refused at parse time (so neither
//! parsing nor rendering recurses deeper), output past 64 MiB stops rendering, and
//! the values built and the work done while rendering have budgets too. No input panics.

mod exec;
mod format;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;

use parse::{ArgKind, Node, Pipe};

/// Deepest nesting of blocks and parentheses a template may have.
const MAX_DEPTH: usize = 100;
/// Most bytes one render may produce.
const MAX_OUTPUT: usize = 64 << 20;

/// A parsed template: parse once (errors surface before any output), render per object.
#[derive(Debug, Clone)]
pub struct Template {
    src: String,
    nodes: Vec<Node>,
}

/// Why a template did not parse or render, worded as Go's `text/template` words it, with
/// the position (1-based line and byte column) and the token, field or call at fault.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TemplateError {
    /// The text is not a valid template: a bad token, unknown function, stray `{{end}}`.
    #[error("template: :{line}:{col}: {msg}")]
    Syntax {
        /// 1-based line of the offending token.
        line: usize,
        /// 1-based byte column of the offending token.
        col: usize,
        /// What is wrong, naming the token.
        msg: String,
    },
    /// The text ends inside a block (`{{if}}`, `{{range}}`, `{{with}}`) with no `{{end}}`.
    #[error("template: :{line}: unexpected EOF")]
    UnexpectedEof {
        /// The line the text ends on.
        line: usize,
    },
    /// Rendering failed at a node: a field of a non-object, a bad call, a bad comparison.
    #[error("template: :{line}:{col}: executing \"\" at <{node}>: {msg}")]
    Exec {
        /// 1-based line of the node.
        line: usize,
        /// 1-based byte column of the node.
        col: usize,
        /// The node as written (at most 20 characters, as Go shows it).
        node: String,
        /// What went wrong.
        msg: String,
    },
    /// Rendering stopped at a budget: output size, values built, or work done.
    #[error("template: {0}")]
    Limit(String),
}

/// 1-based line and byte column of `pos` in `src`.
fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..pos.min(src.len())];
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let col = before.len()
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1)
        + 1;
    (line, col)
}

/// A [`TemplateError::Syntax`] at byte `pos`.
fn syntax(src: &str, pos: usize, msg: String) -> TemplateError {
    let (line, col) = line_col(src, pos);
    TemplateError::Syntax { line, col, msg }
}

impl Template {
    /// Parses `src`, checking what Go checks before running: syntax, that functions exist,
    /// that variables are declared, that blocks close, and that nesting stays within bounds.
    pub fn parse(src: &str) -> Result<Template, TemplateError> {
        Ok(Template {
            src: src.to_string(),
            nodes: parse::parse(src)?,
        })
    }

    /// Renders the template over `data` (`.` and `$` start as `data`).
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        exec::render(&self.src, &self.nodes, data)
    }

    /// The top-level field names the template reads from the root value (`.ID` -> `ID`,
    /// `.Config.Cmd` -> `Config`, `$.Names` -> `Names`), in first-use order, deduplicated:
    /// what `docker ... --format 'table ...'` builds its column headers from. Fields read
    /// where dot is something else (inside `range` or `with`) are not the root's.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        collect_nodes(&self.nodes, true, &mut out);
        out
    }
}

fn collect_nodes(nodes: &[Node], root: bool, out: &mut Vec<String>) {
    for node in nodes {
        match node {
            Node::Text(_) | Node::Break | Node::Continue => {}
            Node::Action(pipe) => collect_pipe(pipe, root, out),
            Node::If {
                with,
                branches,
                otherwise,
            } => {
                for b in branches {
                    collect_pipe(&b.pipe, root, out);
                    collect_nodes(&b.body, root && !with, out);
                }
                collect_nodes(otherwise.as_deref().unwrap_or_default(), root, out);
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                collect_pipe(pipe, root, out);
                collect_nodes(body, false, out);
                collect_nodes(otherwise.as_deref().unwrap_or_default(), root, out);
            }
        }
    }
}

fn collect_pipe(pipe: &Pipe, root: bool, out: &mut Vec<String>) {
    for arg in pipe.cmds.iter().flat_map(|c| &c.args) {
        let name = match &arg.kind {
            ArgKind::Field(names) if root => names.first(),
            ArgKind::Var(var, names) if var == "$" => names.first(),
            ArgKind::Pipe(p) | ArgKind::Chain(p, _) => {
                collect_pipe(p, root, out);
                None
            }
            _ => None,
        };
        if let Some(name) = name.filter(|n| !out.contains(n)) {
            out.push(name.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data() -> Value {
        json!({
            "ID": "abc123",
            "Status": "Up 2 minutes",
            "Name": "web",
            "Args": ["a", "b", "c"],
            "A": "x",
            "M": {"K": "MiXeD"},
            "Count": 3,
            "Ratio": 1.5,
            "Whole": 2.0,
            "Nothing": null,
            "Empty": [],
            "Config": {
                "Cmd": ["sh", "-c", "echo hi"],
                "Labels": {"com.example": "yes", "b": "2"},
                "Env": ["A=1", "B=2"]
            },
            "State": {"Status": "running", "Running": true, "Pid": 42},
            "Mounts": [
                {"Source": "/src", "Destination": "/dst"},
                {"Source": "/a", "Destination": "/b"}
            ],
            "NetworkSettings": {"Networks": {
                "bridge": {"IPAddress": "172.17.0.2"},
                "alpha": {"IPAddress": "10.0.0.2"}
            }}
        })
    }

    /// Parses and renders `src` over [`data`], panicking with the error.
    fn render(src: &str) -> String {
        let t = Template::parse(src).unwrap_or_else(|e| panic!("parse {src:?}: {e}"));
        t.render(&data())
            .unwrap_or_else(|e| panic!("render {src:?}: {e}"))
    }

    fn parse_err(src: &str) -> String {
        Template::parse(src).expect_err(src).to_string()
    }

    fn render_err(src: &str) -> String {
        let t = Template::parse(src).unwrap_or_else(|e| panic!("parse {src:?}: {e}"));
        t.render(&data()).expect_err(src).to_string()
    }

    #[test]
    fn docker_formats() {
        assert_eq!(render("{{.ID}}\t{{.Status}}"), "abc123\tUp 2 minutes");
        assert_eq!(render("{{json .Config.Cmd}}"), r#"["sh","-c","echo hi"]"#);
        assert_eq!(render("{{.Config.Cmd}}"), "[sh -c echo hi]");
        assert_eq!(
            render("{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}"),
            "/src:/dst /a:/b "
        );
        assert_eq!(
            render("{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}"),
            "alpha=10.0.0.2;bridge=172.17.0.2;"
        );
        assert_eq!(render(r#"{{index .Config.Labels "com.example"}}"#), "yes");
        assert_eq!(
            render(r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#),
            "up"
        );
        assert_eq!(
            render(r#"{{if eq .State.Status "exited"}}up{{else}}down{{end}}"#),
            "down"
        );
        assert_eq!(render("{{.Name | upper}}"), "WEB");
        assert_eq!(render(r#"{{join .Args ","}}"#), "a,b,c");
        assert_eq!(render(r#"{{printf "%s-%d" .A 3}}"#), "x-3");
        assert_eq!(render(r#"{{lower (index .M "K")}}"#), "mixed");
        assert_eq!(render("{{.State.Pid}} {{.State.Running}}"), "42 true");
        let ports = json!({"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": null}});
        let t =
            Template::parse("{{range $p, $c := .Ports}}{{$p}}->{{(index $c 0).HostPort}} {{end}}")
                .unwrap();
        assert_eq!(
            t.render(&ports).unwrap(),
            "443/tcp-><no value> 80/tcp->8080 "
        );
    }

    #[test]
    fn json_of_root_round_trips() {
        let out = render("{{json .}}");
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), data());
        assert!(!out.ends_with('\n'));
        assert_eq!(render("{{json .Nothing}} {{json .Missing}}"), "null null");
    }

    #[test]
    fn missing_and_null() {
        assert_eq!(render("{{.Missing}}"), "<no value>");
        assert_eq!(render("{{.Missing.Deeper}}"), "<no value>");
        assert_eq!(render("{{.Nothing}}"), "<nil>");
        assert_eq!(render("{{.Nothing.Field}}"), "<no value>");
        assert_eq!(render(r#"{{index .Config.Labels "nope"}}"#), "<no value>");
        assert_eq!(
            render("{{len .Nothing}}{{range .Nothing}}x{{else}}empty{{end}}"),
            "0empty"
        );
        assert_eq!(render("{{print .Missing}}"), "<nil>");
    }

    #[test]
    fn printing_values() {
        assert_eq!(render("{{.Ratio}} {{.Whole}} {{.Count}}"), "1.5 2 3");
        assert_eq!(render("{{.Config.Labels}}"), "map[b:2 com.example:yes]");
        assert_eq!(render("{{.Empty}}"), "[]");
        let mixed = json!({"L": [1, "a", null, true, {"z": [2.5]}]});
        let t = Template::parse("{{.L}}").unwrap();
        assert_eq!(t.render(&mixed).unwrap(), "[1 a <nil> true map[z:[2.5]]]");
        assert!(render("{{.}}").starts_with("map[A:x Args:[a b c] "));
    }

    #[test]
    fn literals() {
        assert_eq!(render(r#"{{"a\tb\n\"q\"\\"}}"#), "a\tb\n\"q\"\\");
        assert_eq!(render("{{`raw\\n`}}"), "raw\\n");
        assert_eq!(
            render("{{1}} {{-2}} {{1.25}} {{0x1F}} {{1_000}} {{true}} {{false}} {{'a'}}"),
            "1 -2 1.25 31 1000 true false 97"
        );
        assert_eq!(render(r#"{{"\u00e9\x41\101"}}"#), "éAA");
        assert!(parse_err(r#"{{"\q"}}"#).contains(r#"bad quoted string syntax: "\q""#));
        assert!(parse_err("{{1x}}").contains("bad number syntax: \"1x\""));
    }

    #[test]
    fn pipelines_and_parens() {
        assert_eq!(render(r#"{{.A | printf "%s!"}}"#), "x!");
        assert_eq!(render(r#"{{"a" | printf "%s-%s" "b"}}"#), "b-a");
        assert_eq!(render(r#"{{(index .Mounts 1).Source}}"#), "/a");
        assert_eq!(
            render(r#"{{index .Mounts 0 | json}}"#),
            r#"{"Destination":"/dst","Source":"/src"}"#
        );
        assert_eq!(render(r#"{{len (split "a:b:c" ":")}}"#), "3");
        assert_eq!(render(r#"{{(split "a:b:c" ":")}}"#), "[a b c]");
    }

    #[test]
    fn variables_and_scope() {
        assert_eq!(render("{{$x := .A}}{{$x}}{{$x = .Name}}{{$x}}"), "xweb");
        assert_eq!(render("{{range $e := .Args}}{{$e}}{{end}}"), "abc");
        assert_eq!(
            render("{{range $i, $e := .Args}}{{$i}}{{$e}}{{end}}"),
            "0a1b2c"
        );
        assert_eq!(
            render("{{range .Mounts}}{{$.Name}}{{.Source}}{{end}}"),
            "web/srcweb/a"
        );
        assert_eq!(render("{{with $m := .Mounts}}{{len $m}}{{end}}"), "2");
        assert_eq!(render("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"), "2");
        assert_eq!(render("{{range .Args}}{{$y := .}}{{end}}done"), "done");
        assert!(
            parse_err("{{if true}}{{$y := 1}}{{end}}{{$y}}").contains("undefined variable \"$y\"")
        );
        assert!(
            parse_err("{{range $e := .Args}}{{end}}{{$e}}").contains("undefined variable \"$e\"")
        );
        assert!(parse_err("{{$z = 1}}").contains("undefined variable \"$z\""));
    }

    #[test]
    fn control_flow() {
        let chain = r#"{{if eq .Count 1}}one{{else if eq .Count 3}}three{{else}}other{{end}}"#;
        assert_eq!(render(chain), "three");
        assert_eq!(
            render("{{with .State}}{{.Status}}{{else}}none{{end}}"),
            "running"
        );
        assert_eq!(render("{{with .Missing}}{{.}}{{else}}none{{end}}"), "none");
        assert_eq!(
            render("{{with .Missing}}a{{else with .Name}}{{.}}{{end}}"),
            "web"
        );
        assert_eq!(render("{{range .Empty}}x{{else}}empty{{end}}"), "empty");
        assert_eq!(
            render("{{range $i, $e := .Args}}{{if eq $i 1}}{{continue}}{{end}}{{$e}}{{end}}"),
            "ac"
        );
        assert_eq!(
            render("{{range .Args}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}"),
            "a"
        );
        assert_eq!(render("{{range 3}}{{.}}{{end}}"), "012");
        for (v, truthy) in [
            ("0", false),
            ("1", true),
            ("\"\"", false),
            ("\"x\"", true),
            (".Nothing", false),
        ] {
            assert_eq!(
                render(&format!("{{{{if {v}}}}}t{{{{else}}}}f{{{{end}}}}")),
                if truthy { "t" } else { "f" }
            );
        }
        assert_eq!(
            render("{{if .Empty}}t{{else}}f{{end}}{{if .Config}}t{{end}}{{if .Nothing}}t{{end}}"),
            "ft"
        );
        assert_eq!(
            render("{{if and .Name .Count}}y{{end}}{{if or .Missing .Empty}}y{{else}}n{{end}}"),
            "yn"
        );
        assert_eq!(
            render("{{and 1 0 .Missing.X}} {{or 0 \"\" 7}} {{not .Empty}}"),
            "0 7 true"
        );
    }

    #[test]
    fn comparisons() {
        assert_eq!(
            render(
                r#"{{eq .A "y" "x"}} {{ne .Count 3}} {{lt 1 2.5}} {{ge "b" "a"}} {{le 3 3}} {{gt .Count 5}}"#
            ),
            "true false true true true false"
        );
        assert_eq!(render("{{eq .Whole 2}} {{eq .Nothing nil}}"), "true true");
        assert!(
            render_err(r#"{{eq .Count "3"}}"#)
                .contains("error calling eq: incompatible types for comparison")
        );
        assert!(render_err("{{lt .Args 1}}").contains("invalid type for comparison"));
        assert!(render_err("{{eq .Args .Args}}").contains("uncomparable type []interface {}"));
    }

    #[test]
    fn builtins() {
        assert_eq!(
            render(r#"{{len .Args}} {{len .Name}} {{len .Config.Labels}}"#),
            "3 3 2"
        );
        assert_eq!(
            render(r#"{{index .Args 1}} {{index .Name 0}} {{index . "Config" "Cmd" 0}}"#),
            "b 119 sh"
        );
        assert_eq!(
            render(r#"{{slice .Args 1}} {{slice .Name 1 2}} {{slice .Args 0 1 2}}"#),
            "[b c] e [a]"
        );
        assert_eq!(
            render(r#"{{print "a" 1 2 "b"}}|{{println 1 "x"}}|"#),
            "a1 2b|1 x\n|"
        );
        assert!(
            render_err("{{index .Args 5}}").contains("error calling index: index out of range: 5")
        );
        assert!(render_err("{{slice .Args 2 1}}").contains("invalid slice index: 2 > 1"));
        assert!(render_err(r#"{{slice "é" 1}}"#).contains("character boundary"));
        assert!(render_err("{{len .Count}}").contains("error calling len: len of type int"));
        assert!(render_err("{{not}}").contains("wrong number of args for not: want 1 got 0"));
    }

    #[test]
    fn printf_verbs() {
        let p = |args: &str| render(&format!("{{{{printf {args}}}}}"));
        assert_eq!(
            p(r#""%v %s %d %t" .Args .Name .Count .State.Running"#),
            "[a b c] web 3 true"
        );
        assert_eq!(p(r#""%q %q" .Name .Args"#), r#""web" ["a" "b" "c"]"#);
        assert_eq!(p(r#""%f %.2f %.0f" .Ratio .Ratio 2.5"#), "1.500000 1.50 2");
        assert_eq!(p(r#""%x %X %x %%" 255 255 "hi""#), "ff FF 6869 %");
        assert_eq!(
            p(r#""[%5s][%-5s][%05d][%+d][%.2s]" "ab" "ab" 42 7 "abc""#),
            "[   ab][ab   ][00042][+7][ab]"
        );
        assert_eq!(p(r#""%d %d""#), "%!d(MISSING) %!d(MISSING)");
        assert_eq!(p(r#""%d" "x""#), "%!d(string=x)");
        assert_eq!(p(r#""a" 1"#), "a%!(EXTRA int=1)");
        assert_eq!(p(r#""%""#), "%!(NOVERB)");
        assert_eq!(p(r#""%9999999d" 1"#), "%!(BADWIDTH)1");
    }

    #[test]
    fn docker_helpers() {
        assert_eq!(
            render(r#"{{title "hello wide-world"}} {{upper "é"}} {{lower "ÀB"}}"#),
            "Hello Wide-World É àb"
        );
        assert_eq!(
            render(r#"{{split "a,b" ","}} {{len (split "" ",")}} {{split "ab" ""}}"#),
            "[a b] 1 [a b]"
        );
        assert_eq!(
            render(r#"{{truncate .ID 3}}|{{truncate "héllo" 2}}|{{truncate "ab" 10}}"#),
            "abc|hé|ab"
        );
        assert_eq!(
            render(r#"[{{pad .Name 2 1}}][{{pad "" 3 3}}]"#),
            "[  web ][]"
        );
        assert_eq!(
            render(r#"{{join .Config.Env " "}} {{join .Nothing ","}}|"#),
            "A=1 B=2 |"
        );
        assert!(
            render_err("{{upper .Count}}")
                .contains("wrong type for value; expected string; got int")
        );
        assert!(render_err(r#"{{pad "x" -1 0}}"#).contains("negative Repeat count"));
    }

    #[test]
    fn trim_markers_and_comments() {
        assert_eq!(render("a  {{- .A -}}  \n b"), "axb");
        assert_eq!(render("a {{- .A}} b"), "ax b");
        assert_eq!(render("a {{.A -}} \t\n b"), "a xb");
        assert_eq!(render("{{- .A -}}"), "x");
        assert_eq!(render("a{{/* hi */}}b"), "ab");
        assert_eq!(render("a \n{{- /* hi\n there */ -}}\n b"), "ab");
        assert_eq!(render("{{-3}}"), "-3");
        assert_eq!(render("{{range .Args -}}\n  {{.}}\n{{- end}}"), "abc");
        assert!(parse_err("{{/* x */ .A}}").contains("comment ends before closing delimiter"));
        assert!(parse_err("{{/* x").contains("unclosed comment"));
    }

    #[test]
    fn parse_errors_name_the_token() {
        assert_eq!(parse_err("{{.ID"), "template: :1:1: unclosed action");
        assert_eq!(
            parse_err("ab\n{{.A | foo}}"),
            "template: :2:8: function \"foo\" not defined"
        );
        assert_eq!(parse_err("x{{end}}"), "template: :1:4: unexpected {{end}}");
        assert_eq!(parse_err("{{else}}"), "template: :1:3: unexpected {{else}}");
        assert_eq!(
            parse_err("{{range .Args}}x"),
            "template: :1: unexpected EOF"
        );
        assert_eq!(
            parse_err("{{if .A}}\n{{else}}\n"),
            "template: :3: unexpected EOF"
        );
        assert_eq!(
            parse_err("{{range}}{{end}}"),
            "template: :1:8: missing value for range"
        );
        assert_eq!(
            parse_err("{{}}"),
            "template: :1:3: missing value for command"
        );
        assert_eq!(
            parse_err("{{break}}"),
            "template: :1:3: {{break}} outside {{range}}"
        );
        assert_eq!(
            parse_err("{{template \"x\"}}"),
            "template: :1:3: {{template}} is not supported"
        );
        assert!(parse_err("{{.A ? 1}}").contains("unrecognized character in action: U+003F '?'"));
        assert!(parse_err("{{(.A}}").contains("unclosed left paren"));
        assert!(parse_err("{{.A)}}").contains("unexpected right paren"));
        assert!(parse_err("{{\"abc}}").contains("unterminated quoted string"));
        assert!(parse_err("{{.A | 3}}").contains("non executable command in pipeline stage 2"));
        assert!(parse_err("{{.A |}}").contains("unexpected \"}}\" in command after \"|\""));
        assert!(parse_err("{{\"x\".A}}").contains("unexpected . after term"));
        assert!(
            parse_err("{{if 1}}{{else}}{{else}}{{end}}")
                .contains("expected {{end}}; found {{else}}")
        );
        assert!(parse_err("{{.A\"x\"}}").contains("bad character U+0022"));
    }

    #[test]
    fn exec_errors_name_the_field() {
        assert_eq!(
            render_err("{{.Name.Bar}}"),
            "template: :1:3: executing \"\" at <.Name.Bar>: can't evaluate field Bar in type string"
        );
        assert!(
            render_err("{{.Args.X}}").contains("can't evaluate field X in type []interface {}")
        );
        assert!(render_err("{{.A 1}}").contains("can't give argument to non-function .A"));
        assert!(render_err("{{range .Name}}{{end}}").contains("range can't iterate over web"));
        let long = render_err(r#"{{index .Args 100000 "0123456789abcdef"}}"#);
        assert!(long.contains("at <index .Args 100000 \"...>"), "{long}");
    }

    #[test]
    fn fields_in_first_use_order() {
        let t = Template::parse("table {{.ID}}\t{{.Config.Cmd}}\t{{.ID}}{{$.Names}}{{range .Mounts}}{{.Source}}{{$.Size}}{{end}}{{with .State}}{{.Pid}}{{else}}{{.Image}}{{end}}{{if .Labels}}{{.Status}}{{end}}{{(index .Ports 0)}}").unwrap();
        assert_eq!(
            t.fields(),
            [
                "ID", "Config", "Names", "Mounts", "Size", "State", "Image", "Labels", "Status",
                "Ports"
            ]
        );
        assert!(Template::parse("plain").unwrap().fields().is_empty());
    }

    #[test]
    fn bounded_nesting_and_output() {
        let deep = format!("{{{{{}1{}}}}}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse_err(&deep).contains("nested deeper than 100 levels"));
        let deep_if = "{{if 1}}".repeat(101) + &"{{end}}".repeat(101);
        assert!(parse_err(&deep_if).contains("nested deeper"));
        let ok = "{{if 1}}".repeat(100) + "x" + &"{{end}}".repeat(100);
        assert_eq!(render(&ok), "x");
        assert_eq!(render(&"(".repeat(100_000)).len(), 100_000);
        let open = format!("{{{{{}", "(".repeat(100_000));
        assert_eq!(parse_err(&open), "template: :1:1: unclosed action");
        assert!(parse_err(&format!("{open}}}}}")).contains("unclosed left paren"));
        let big = r#"{{range 100}}{{pad "x" 1000000 0}}{{end}}"#;
        assert_eq!(render_err(big), "template: output exceeds 64 MiB");
        let doubling = r#"{{$x := "xx"}}{{range 40}}{{$x = print $x $x}}{{end}}"#;
        assert!(render_err(doubling).contains("exceed 256 MiB"));
        let spin = "{{range 1000000000}}{{end}}";
        assert!(render_err(spin).contains("work budget"));
        let split = r#"{{$x := pad "a" 100000000 0}}{{split $x ""}}"#;
        assert!(render_err(split).contains("exceed 256 MiB"));
    }

    #[test]
    fn deepest_allowed_nesting_renders() {
        let parens = format!("{{{{{}1{}}}}}", "(print ".repeat(99), ")".repeat(99));
        assert_eq!(render(&parens), "1");
        let mut deep = json!(1);
        for _ in 0..120 {
            deep = json!([deep]);
        }
        let text = serde_json::to_string(&deep).unwrap();
        let deep: Value = serde_json::from_str(&text).unwrap();
        let t = Template::parse("{{.}} {{json .}} {{printf \"%d\" .}}").unwrap();
        let out = t.render(&deep).unwrap();
        assert!(out.starts_with(&format!("{}1{}", "[".repeat(120), "]".repeat(120))));
    }

    #[test]
    fn multibyte_text_near_delimiters() {
        assert_eq!(render("é{{.A}}é{{- \"ü\" -}}é"), "éxéüé");
        assert!(parse_err("{{é}}").contains("function \"é\" not defined"));
        assert!(parse_err("{{.A€}}").contains("bad character U+20AC"));
        assert!(parse_err("{{ \u{2028} }}").contains("unrecognized character"));
        assert!(parse_err("é{{").contains("unclosed action"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        #[test]
        fn random_text_never_panics(src in "([{}()|$.,:=\"`' \\-/*a-zA-Z0-9é\\\\\t\n]|\\{\\{|\\}\\}| -\\}\\}|\\{\\{- |\\.ID|\\.Config|\\$x|range|if|else|end|with|index|printf|len|json|split|:=|\"%d\"){0,40}") {
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&data());
                let _ = t.render(&json!([1, "a", null]));
                let _ = t.fields();
            }
        }

        #[test]
        fn any_string_never_panics(src in "\\PC{0,80}") {
            if let Ok(t) = Template::parse(&src) {
                let _ = t.render(&data());
            }
        }
    }
}
