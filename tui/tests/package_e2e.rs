//! The Debian package installed for real: `dpkg -i` the `.deb` that `cargo xtask package` built
//! (its path in `HTTP_TOP_DEB`; `cargo xtask test` sets it), check what it put on the machine,
//! run the binary with only the capabilities its systemd unit grants, and remove it.
//!
//! Root only: `#[ignore]`d in a plain `cargo test`, run by `cargo xtask test`.

#![expect(
    clippy::print_stderr,
    reason = "tests explain what they are waiting for"
)]

use std::{fs, path::Path, process::Command};

mod common;

use common::run;

const UNIT: &str = "/lib/systemd/system/http-top.service";

/// Removes the package even when an assertion fails.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = Command::new("dpkg").args(["--purge", "http-top"]).status();
    }
}

#[test]
#[ignore = "needs root: installs a package"]
fn the_package_installs_a_working_service_and_removes_cleanly() {
    let deb = std::env::var("HTTP_TOP_DEB")
        .expect("HTTP_TOP_DEB: the .deb to install (`cargo xtask test` builds it and sets this)");
    assert!(Path::new(&deb).exists(), "{deb} does not exist");
    let listing = run(Command::new("dpkg-deb").args(["--contents", &deb]));
    eprintln!("{listing}");

    let installed = Installed;
    run(Command::new("dpkg").args(["-i", &deb]));

    let version = run(Command::new("/usr/bin/http-top").arg("--version"));
    assert_eq!(
        version.trim(),
        format!("http-top {}", env!("CARGO_PKG_VERSION"))
    );

    // The man page is found by man, and renders the options of --help.
    let page = run(Command::new("man").args(["-w", "http-top"]));
    assert_eq!(page.trim(), "/usr/share/man/man1/http-top.1.gz");
    let text = run(Command::new("man")
        .args(["-P", "cat", "http-top"])
        .env("MANWIDTH", "100"));
    for flag in ["--metrics", "--route", "--group-by", "--headless"] {
        assert!(text.contains(flag), "the man page lacks {flag}");
    }

    // Completions: bash loads its script and completes our flags; zsh and fish have theirs.
    let script = "source /usr/share/bash-completion/completions/http-top";
    let spec = run(Command::new("bash").args(["-c", &format!("{script} && complete -p http-top")]));
    let function = spec
        .split_whitespace()
        .skip_while(|w| *w != "-F")
        .nth(1)
        .unwrap_or_else(|| panic!("no completion function in {spec}"));
    let bash = run(Command::new("bash").args([
        "-c",
        &format!(
            "{script} && COMP_WORDS=(http-top --metr) COMP_CWORD=1 COMP_LINE='http-top --metr' \
             COMP_POINT=15 && {function} http-top --metr http-top && \
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        ),
    ]));
    assert!(bash.contains("--metrics-linger"), "bash completion: {bash}");
    let zsh = fs::read_to_string("/usr/share/zsh/vendor-completions/_http-top").unwrap();
    assert!(zsh.starts_with("#compdef http-top") && zsh.contains("--metrics"));
    let fish = fs::read_to_string("/usr/share/fish/vendor_completions.d/http-top.fish").unwrap();
    assert!(fish.contains("complete -c http-top") && fish.contains("metrics"));

    // The unit and its settings; systemd's own checker passes it where systemd is installed.
    assert!(Path::new("/etc/default/http-top").exists());
    let unit = fs::read_to_string(UNIT).unwrap();
    if Path::new("/usr/bin/systemd-analyze").exists() {
        let out = Command::new("systemd-analyze")
            .args(["verify", UNIT])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        // Without systemd as PID 1 (a container), verify still parses and checks the unit, and
        // says so on stderr about the manager only.
        let about_unit: Vec<&str> = err.lines().filter(|l| l.contains("http-top")).collect();
        assert!(
            out.status.success() && about_unit.is_empty(),
            "systemd-analyze verify {UNIT}: {}\n{err}",
            out.status
        );
    } else {
        eprintln!("systemd-analyze is not installed: the unit is not verified");
    }
    // The service user exists, made by the postinst.
    run(Command::new("getent").args(["passwd", "http-top"]));

    // The unit's command line, with its settings, and only its capabilities: http-top captures
    // and drops to the http-top user (setpriv stands in for systemd's CapabilityBoundingSet).
    let caps: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit bounds its capabilities")
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let out = Command::new("setpriv")
        .arg(format!("--bounding-set=-all,{}", caps.join(",")))
        .args([
            "/usr/bin/http-top",
            "--headless",
            "--quiet",
            "--interface",
            "lo",
            "--metrics",
            "127.0.0.1:0",
            "--user",
            "http-top",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "http-top under the unit's capabilities: {err}"
    );
    assert!(
        out.stdout.is_empty(),
        "--quiet printed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let uid = run(Command::new("id").args(["-u", "http-top"]));
    assert!(
        err.contains(&format!("uid {}", uid.trim())) && err.contains("capabilities 0x0"),
        "did not drop to http-top with no capabilities: {err}"
    );
    // The names helper starts and scans under the unit's bounding set (it keeps three of them).
    assert!(
        !err.contains("process and container names"),
        "the names helper failed under the unit's capabilities: {err}"
    );

    drop(installed);
    assert!(
        !Path::new("/usr/bin/http-top").exists(),
        "the binary stayed after removal"
    );
    assert!(!Path::new(UNIT).exists());
    let user = Command::new("getent")
        .args(["passwd", "http-top"])
        .output()
        .unwrap();
    assert!(!user.status.success(), "purge left the http-top user");
}
