use super::render;
use serde_json::{json, Value};

fn r(t: &str, v: &Value) -> String {
    match render(t, v) {
        Ok(s) => s,
        Err(e) => panic!("{t:?}: {e:#}"),
    }
}

fn err(t: &str, v: &Value) -> String {
    match render(t, v) {
        Ok(s) => panic!("{t:?} rendered {s:?}, expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn container() -> Value {
    json!({
        "Id": "abc123",
        "Name": "/web",
        "Args": ["-g", "daemon off;"],
        "State": {"Running": true, "Status": "running", "Pid": 42, "ExitCode": 0},
        "Config": {
            "Image": "nginx",
            "Labels": {"com.example.x": "1", "team": "a"},
            "Env": ["A=1", "B=2"],
            "Cmd": null,
        },
        "NetworkSettings": {
            "Networks": {
                "front": {"IPAddress": "10.0.0.2", "Gateway": "10.0.0.1"},
                "back": {"IPAddress": "10.1.0.2", "Gateway": "10.1.0.1"},
            },
            "Ports": {
                "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}],
                "443/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8443"}],
            },
        },
        "Size": 1.5,
        "Empty": [],
    })
}

#[test]
fn docker_doc_examples() {
    let c = container();
    assert_eq!(
        r(
            "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
            &c
        ),
        "10.1.0.2 10.0.0.2 "
    );
    assert_eq!(
        r(
            "{{range $p, $conf := .NetworkSettings.Ports}} {{$p}} -> {{(index $conf 0).HostPort}} {{end}}",
            &c
        ),
        " 443/tcp -> 8443  80/tcp -> 8080 "
    );
    assert_eq!(
        r("{{json .Config}}", &c),
        serde_json::to_string(&c["Config"]).unwrap()
    );
    assert_eq!(r(r#"{{index .Config.Labels "com.example.x"}}"#, &c), "1");
    assert_eq!(r("{{.Name | upper}}", &c), "/WEB");
    assert_eq!(r("{{if .State.Running}}up{{else}}down{{end}}", &c), "up");
    assert_eq!(r(r#"{{join .Args ","}}"#, &c), "-g,daemon off;");
    assert_eq!(r(r#"{{printf "%s:%d" .Name 3}}"#, &c), "/web:3");
    assert_eq!(r("{{.State.Pid}}", &c), "42");
}

#[test]
fn dot_vars_literals() {
    let c = container();
    assert_eq!(r("{{.}}", &json!("x")), "x");
    assert_eq!(
        r("{{with .State}}{{$.Name}} {{.Status}}{{end}}", &c),
        "/web running"
    );
    assert_eq!(r("{{$n := .Name}}{{$n}}/{{$n}}", &c), "/web//web");
    assert_eq!(r("{{$s := .State}}{{$s.Pid}}", &c), "42");
    assert_eq!(r("{{$x := 1}}{{$x = 2}}{{$x}}", &c), "2");
    assert_eq!(
        r(
            r#"{{"str"}} {{`raw\n`}} {{3}} {{-2}} {{1.5}} {{true}} {{'a'}}"#,
            &c
        ),
        "str raw\\n 3 -2 1.5 true 97"
    );
    assert_eq!(r(r#"{{"a\tb\"c"}}"#, &c), "a\tb\"c");
    assert_eq!(r("{{0x10}} {{1_000}} {{1e3}}", &c), "16 1000 1000");
    assert_eq!(r("{{(index .Args 1)}}", &c), "daemon off;");
    assert_eq!(
        r(
            "{{(index .NetworkSettings.Networks \"front\").IPAddress}}",
            &c
        ),
        "10.0.0.2"
    );
    assert_eq!(r("{{$.State.Status}}", &c), "running");
    assert_eq!(r("{{.Name | printf \"%s!\" | upper}}", &c), "/WEB!");
}

#[test]
fn trim_and_comments() {
    let c = container();
    assert_eq!(r("a  {{- .State.Pid -}}  \n b", &c), "a42b");
    assert_eq!(r("a {{/* hidden */}} b", &c), "a  b");
    assert_eq!(r("a {{- /* hidden */ -}} b", &c), "ab");
    assert_eq!(r("{{-3}}", &c), "-3");
    assert_eq!(
        r("{{range .Args -}}\n  [{{.}}]\n{{- end}}", &c),
        "[-g][daemon off;]"
    );
    assert!(err("{{/* open", &c).contains("unclosed comment"));
    assert!(err("{{/* x */ .Name}}", &c).contains("comment ends before closing delimiter"));
}

#[test]
fn range_forms() {
    let c = container();
    assert_eq!(r("{{range .Args}}[{{.}}]{{end}}", &c), "[-g][daemon off;]");
    assert_eq!(
        r("{{range $i, $a := .Args}}{{$i}}={{$a}} {{end}}", &c),
        "0=-g 1=daemon off; "
    );
    assert_eq!(
        r("{{range $v := .Config.Env}}{{$v}};{{end}}", &c),
        "A=1;B=2;"
    );
    assert_eq!(
        r(
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}},{{end}}",
            &c
        ),
        "com.example.x=1,team=a,"
    );
    assert_eq!(r("{{range .Empty}}x{{else}}none{{end}}", &c), "none");
    assert_eq!(r("{{range .Config.Cmd}}x{{else}}nil{{end}}", &c), "nil");
    assert_eq!(
        r("{{range .Config.Nope}}x{{else}}missing{{end}}", &c),
        "missing"
    );
    assert_eq!(r("{{range 3}}{{.}}{{end}}", &c), "012");
    assert_eq!(
        r(
            "{{range .Config.Env}}{{if eq . \"B=2\"}}{{break}}{{end}}{{.}}{{end}}",
            &c
        ),
        "A=1"
    );
    assert_eq!(
        r(
            "{{range .Config.Env}}{{if eq . \"A=1\"}}{{continue}}{{end}}{{.}}{{end}}",
            &c
        ),
        "B=2"
    );
    // variables declared in a body do not leak out of it
    assert!(err("{{range .Args}}{{$x := .}}{{end}}{{$x}}", &c).contains("undefined variable: $x"));
    // a range over split's owned result
    assert_eq!(
        r(r#"{{range split "a,b" ","}}<{{.}}>{{end}}"#, &c),
        "<a><b>"
    );
    assert!(err("{{range .Name}}x{{end}}", &c).contains("range can't iterate over /web"));
    assert!(err("{{break}}", &c).contains("{{break}} outside {{range}}"));
}

#[test]
fn if_else_with() {
    let c = container();
    let t = "{{if eq .State.Status \"exited\"}}E{{else if .State.Running}}R{{else}}?{{end}}";
    assert_eq!(r(t, &c), "R");
    let mut d = c.clone();
    d["State"]["Running"] = json!(false);
    assert_eq!(r(t, &d), "?");
    d["State"]["Status"] = json!("exited");
    assert_eq!(r(t, &d), "E");
    for (falsy, want) in [
        ("false", "F"),
        ("0", "F"),
        ("\"\"", "F"),
        ("(not true)", "F"),
        (".Empty", "F"),
        ("(index .Config.Labels \"none\")", "F"),
        (".Config.Cmd", "F"),
        ("1", "T"),
        ("\"x\"", "T"),
        (".Args", "T"),
        (".Config.Labels", "T"),
    ] {
        assert_eq!(
            r(&format!("{{{{if {falsy}}}}}T{{{{else}}}}F{{{{end}}}}"), &c),
            want,
            "{falsy}"
        );
    }
    assert_eq!(r("{{with .State}}{{.Pid}}{{end}}", &c), "42");
    assert_eq!(r("{{with .Empty}}{{.}}{{else}}empty{{end}}", &c), "empty");
    assert_eq!(r("{{with $x := .State.Pid}}{{$x}}{{end}}", &c), "42");
    assert_eq!(
        r(
            "{{with .Config.Nope}}a{{else with .State}}{{.Pid}}{{end}}",
            &c
        ),
        "42"
    );
    assert_eq!(
        r("{{if and .State.Running (gt .State.Pid 10)}}ok{{end}}", &c),
        "ok"
    );
    assert_eq!(r("{{or .Config.Cmd .Config.Image}}", &c), "nginx");
    assert_eq!(r("{{and 1 0 .No.Such}}", &c), "0",);
    assert_eq!(r("{{not .State.Running}}", &c), "false");
}

#[test]
fn printing_like_go() {
    let v = json!({
        "m": {"b": [1, "x", null], "a": true, "c": {}},
        "f": 1.5, "big": 1e6, "tiny": 0.00001, "neg": -2, "z": null, "u": 18446744073709551615u64
    });
    assert_eq!(r("{{.m}}", &v), "map[a:true b:[1 x <nil>] c:map[]]");
    assert_eq!(r("{{.m.b}}", &v), "[1 x <nil>]");
    assert_eq!(
        r("{{.f}} {{.big}} {{.tiny}} {{.neg}} {{.u}}", &v),
        "1.5 1e+06 1e-05 -2 18446744073709551615"
    );
    assert_eq!(r("{{.z}} {{.m.nope}}", &v), "<no value> <no value>");
    assert_eq!(
        r("{{json .m}}", &v),
        r#"{"a":true,"b":[1,"x",null],"c":{}}"#
    );
    assert_eq!(r("{{json .m.nope}}", &v), "null");
    assert_eq!(r("{{print 1 2 \"a\" 3 \"b\" \"c\"}}", &v), "1 2a3bc");
    assert_eq!(r("{{println .neg \"x\"}}", &v), "-2 x\n");
}

#[test]
fn functions() {
    let c = container();
    assert_eq!(
        r("{{len .Args}} {{len .Config.Labels}} {{len .Name}}", &c),
        "2 2 4"
    );
    assert_eq!(
        r(
            r#"{{index .NetworkSettings.Ports "80/tcp" 0 "HostPort"}}"#,
            &c
        ),
        "8080"
    );
    assert_eq!(r(r#"{{index .Config.Labels "missing"}}"#, &c), "<no value>");
    assert_eq!(r("{{index .Args}}", &c), "[-g daemon off;]");
    assert_eq!(
        r("{{slice .Args 1}} {{slice .Name 1 3}}", &c),
        "[daemon off;] we"
    );
    assert_eq!(
        r(r#"{{split "a:b:c" ":"}} {{len (split "a:b" ":")}}"#, &c),
        "[a b c] 2"
    );
    assert_eq!(r(r#"{{join (split "a:b:c" ":") "-"}}"#, &c), "a-b-c");
    assert_eq!(r(r#"{{join .Config.Cmd ","}}|"#, &c), "|");
    assert_eq!(
        r(
            r#"{{lower "AbC"}} {{upper "AbC"}} {{title "hello big_world-x"}}"#,
            &c
        ),
        "abc ABC Hello Big_world-X"
    );
    assert_eq!(
        r(
            r#"{{truncate "abcdef" 3}} {{truncate "ab" 3}} {{truncate .Id 2}}"#,
            &c
        ),
        "abc ab ab"
    );
    assert_eq!(r(r#"[{{pad "a" 1 2}}][{{pad "" 1 2}}]"#, &c), "[ a  ][]");
    assert_eq!(
        r(
            r#"{{eq .State.Pid 42}} {{eq .State.Status "x" "running"}} {{ne 1 2}}"#,
            &c
        ),
        "true true true"
    );
    assert_eq!(
        r(
            r#"{{lt 1 2}} {{le 2 2}} {{gt 1.5 2}} {{ge "b" "a"}} {{lt -1 0.5}}"#,
            &c
        ),
        "true true false true true"
    );
    assert_eq!(
        r(
            r#"{{eq (index .Config.Labels "nope") "x"}} {{eq nil .Config.Cmd}}"#,
            &c
        ),
        "false true"
    );
    assert!(err(r#"{{lt 1 "a"}}"#, &c).contains("incompatible types for comparison"));
    assert!(err("{{eq .Args .Args}}", &c).contains("non-comparable"));
    assert!(err("{{index .Args 5}}", &c).contains("index out of range: 5"));
    assert!(err("{{index .Args \"x\"}}", &c).contains("cannot index slice"));
    assert!(err("{{upper .State.Pid}}", &c).contains("expected string; got int"));
    assert!(err("{{len .State.Pid}}", &c).contains("len of type int"));
    assert!(err("{{len}}", &c).contains("wrong number of args for len: want 1 got 0"));
    assert!(err("{{lower}}", &c).contains("wrong number of args for lower"));
}

#[test]
fn printf_verbs() {
    let c = container();
    let p = |f: &str| r(&format!("{{{{printf {f}}}}}"), &c);
    assert_eq!(
        p(r#""%s|%d|%v|%q" .Name .State.Pid .Args .Name"#),
        "/web|42|[-g daemon off;]|\"/web\""
    );
    assert_eq!(
        p(r#""%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c" 42 42 -42 42 255 255 8 5 65"#),
        "   42|42   |-0042|+42|ff|FF|10|101|A"
    );
    assert_eq!(
        p(r#""%.2f|%8.3f|%e|%t|%%|%v" 3.14159 2 1500.0 true .Size"#),
        "3.14|   2.000|1.500000e+03|true|%|1.5"
    );
    assert_eq!(p(r#""%-6s|%6s|%.2s" "ab" "ab" "abc""#), "ab    |    ab|ab");
    assert_eq!(p(r#""%q %q" "a\"b\n" 97"#), r#""a\"b\n" 'a'"#);
    assert_eq!(p(r#""%d %s" "x" 3"#), "%!d(string=x) %!s(int=3)");
    assert_eq!(p(r#""%d %d" 1"#), "1 %!d(MISSING)");
    assert_eq!(p(r#""%d" 1 "x""#), "1%!(EXTRA string=x)");
    assert_eq!(p(r#""%v %s" .Config.Cmd .Config.Nope"#), "<nil> %!s(<nil>)");
    assert_eq!(p(r#""%999999999d" 1"#), "%!(BADWIDTH)1");
    assert_eq!(p(r#""abc%""#), "abc%!(NOVERB)");
}

#[test]
fn missing_fields() {
    let c = container();
    // the top level is Docker's struct: unknown fields are errors
    let e = err("{{.No.Such}}", &c);
    assert!(e.contains("can't evaluate field No"), "{e}");
    assert!(e.contains("<.No.Such>"), "{e}");
    // inner maps behave as Go maps: <no value>
    assert_eq!(
        r("{{.State.Nope}} {{.Config.Labels.nope.deeper}}", &c),
        "<no value> <no value>"
    );
    assert!(err("{{.Name.X}}", &c).contains("can't evaluate field X in type string"));
    assert!(err("{{.Config.Cmd.X}}", &c).contains("nil pointer evaluating interface {}.X"));
    assert!(err("{{$.Nope}}", &c).contains("can't evaluate field Nope"));
}

#[test]
fn parse_errors() {
    let c = container();
    for (t, want) in [
        ("{{.Name", "unclosed action"),
        ("{{range .Args}}", "unexpected EOF"),
        ("{{if .Name}}a{{else}}b", "unexpected EOF"),
        ("{{end}}", "unexpected {{end}}"),
        ("{{else}}", "unexpected {{else}}"),
        ("{{nope .Name}}", "unknown function \"nope\""),
        ("{{.Name | nope}}", "unknown function \"nope\""),
        ("{{}}", "missing value for command"),
        ("{{(.Name}}", "unclosed left paren"),
        ("{{.Name)}}", "unexpected )"),
        ("{{if}}{{end}}", "missing value for if"),
        ("{{\"abc}}", "unterminated quoted string"),
        ("{{.Name | }}", "missing value for command"),
        ("{{$x, $y := .Args}}", "too many declarations"),
        ("{{define \"x\"}}{{end}}", "{{define}} is not supported"),
        (
            "{{if 1}}{{else}}{{else}}{{end}}",
            "expected end; found {{else}}",
        ),
        (
            "{{range .Args}}{{else if 1}}{{end}}",
            "unexpected if after else in range",
        ),
        ("{{.A @}}", "unexpected '@' in command"),
        ("{{1x}}", "bad number syntax"),
        ("a\nb\n{{.Name", ":3: unclosed action"),
    ] {
        let e = err(t, &c);
        assert!(e.contains(want), "{t:?}: {e}");
        assert!(e.starts_with("template: "), "{t:?}: {e}");
    }
    for (t, want) in [
        ("{{.Name 1}}", "can't give argument to non-function .Name 1"),
        ("{{1 | .Name}}", "can't give argument to non-function .Name"),
        ("{{nil}}", "nil is not a command"),
        ("{{$nope}}", "undefined variable: $nope"),
        ("{{$x = 1}}", "undefined variable: $x"),
    ] {
        let e = err(t, &c);
        assert!(e.contains(want), "{t:?}: {e}");
    }
}

#[test]
fn bounded() {
    let c = container();
    let deep = format!("{}x{}", "{{if 1}}".repeat(500), "{{end}}".repeat(500));
    assert!(err(&deep, &c).contains("nesting too deep"));
    let parens = format!("{{{{{}1{}}}}}", "(".repeat(500), ")".repeat(500));
    assert!(err(&parens, &c).contains("nesting too deep"));
    let ok = format!("{}x{}", "{{if 1}}".repeat(100), "{{end}}".repeat(100));
    assert_eq!(r(&ok, &c), "x");
    let ok = format!("{{{{{}1{}}}}}", "(".repeat(99), ")".repeat(99));
    assert_eq!(r(&ok, &c), "1");
    let big = i64::MAX;
    assert!(err(&format!("{{{{pad \"a\" {big} {big}}}}}"), &c).contains("padding too large"));
    assert!(err(&format!("{{{{truncate \"a\" -{big}}}}}"), &c).contains("negative length"));
    assert!(err("{{range 100000000000}}{{end}}", &c).contains("execution too long"));
    assert!(err("{{range 5000}}{{range 5000}}{{end}}{{end}}", &c).contains("execution too long"));
    let grow = r#"{{$x := "aaaaaaaaaaaaaaaa"}}{{range 40}}{{$x = printf "%s%s" $x $x}}{{end}}"#;
    assert!(err(grow, &c).contains("value too large"));
    assert!(err(r#"{{pad "a" 100000000 1}}"#, &c).contains("padding too large"));
}

/// Random and truncated templates: always Ok or Err, never a panic.
#[test]
fn fuzz() {
    let c = container();
    let pieces = [
        "{{",
        "}}",
        "{{-",
        "-}}",
        " ",
        ".",
        ".Name",
        ".Args",
        "$",
        "$x",
        ":=",
        "=",
        ",",
        "(",
        ")",
        "|",
        "\"",
        "`",
        "'",
        "range",
        "if",
        "else",
        "end",
        "with",
        "break",
        "index",
        "printf",
        "\"%d%s%q\"",
        "0",
        "1",
        "-1",
        "nil",
        "true",
        "len",
        "json",
        "split",
        "join",
        "\\",
        "/*",
        "*/",
        "é",
        "\n",
        ".State",
        ".NetworkSettings.Ports",
        "eq",
        "and",
        "or",
        "not",
        "slice",
        "truncate",
        "pad",
        "0x",
        "1e",
        "\\u",
        "{{/*",
    ];
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let start = std::time::Instant::now();
    let mut oks = 0;
    for _ in 0..5_000 {
        let n = (rnd() % 24) as usize;
        let t: String = (0..n)
            .map(|_| pieces[(rnd() % pieces.len() as u64) as usize])
            .collect();
        if super::render(&t, &c).is_ok() {
            oks += 1;
        }
        for cut in t.char_indices().map(|(i, _)| i).step_by(3) {
            let _ = super::render(&t[..cut], &c);
        }
    }
    // valid templates exist among them, so both paths run
    assert!(oks > 100, "{oks}");
    assert!(start.elapsed().as_secs() < 60);
    // random bytes, biased to the template alphabet
    let alphabet = b"{}{}{}-. $x:=,()|\"`'\\/*0123456789abcdefrangeifelsendwithjsonindex%\n\t\xff";
    for _ in 0..20_000 {
        let n = (rnd() % 40) as usize;
        let bytes: Vec<u8> = (0..n)
            .map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize])
            .collect();
        let t = String::from_utf8_lossy(&bytes);
        let _ = super::render(&t, &c);
    }
    // every prefix of a real template
    let full = r#"{{range $p, $conf := .NetworkSettings.Ports}}{{- $p}} -> {{(index $conf 0).HostPort | printf "%q"}}{{else}}none{{end}}{{/* c */}}"#;
    for i in 0..=full.len() {
        let _ = super::render(&full[..i], &c);
    }
    assert_eq!(r(full, &c), "443/tcp -> \"8443\"80/tcp -> \"8080\"");
}
