//! Builds the web UI (`crates/web`) to wasm, runs wasm-bindgen on it, names the files after
//! their contents (so they can be cached forever) and writes `assets.rs`, which the server
//! includes. No tool beyond cargo and the pinned toolchain's wasm target is needed.
//!
//! `TOLLGATE_SKIP_UI=1` embeds a placeholder page instead, for quick checks (clippy, IDEs).

use std::{
    env,
    fmt::Write as _,
    fs,
    hash::{DefaultHasher, Hash, Hasher},
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    if let Err(e) = run() {
        panic!("building the web UI failed: {e}");
    }
}

type BoxError = Box<dyn std::error::Error>;

fn run() -> Result<(), BoxError> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.join("../..").canonicalize()?;
    let out = PathBuf::from(env::var("OUT_DIR")?).join("ui");
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(&out)?;

    println!("cargo:rerun-if-env-changed=TOLLGATE_SKIP_UI");
    for watched in [
        "crates/web/src",
        "crates/web/static",
        "crates/web/Cargo.toml",
        "crates/api/src",
        "crates/api/Cargo.toml",
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let assets = if env::var_os("TOLLGATE_SKIP_UI").is_some_and(|v| v != "0") {
        placeholder(&out)?
    } else {
        build_ui(&root, &out)?
    };
    write_assets_rs(&out, &assets)
}

struct Asset {
    name: String,
    content_type: &'static str,
}

const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Makes sure the toolchain building us has the wasm target: a fresh machine whose rustup does
/// not install the targets `rust-toolchain.toml` lists (`RUSTUP_AUTO_INSTALL=0`, older rustup)
/// lacks it, and the wasm build would fail with "can't find crate for `core`". Installs it
/// through rustup; failing that, panics with the command that fixes it as the first line.
fn ensure_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    let Some(sysroot) = sysroot else {
        // Cannot tell; let the wasm build speak for itself.
        return;
    };
    let has_target = |sysroot: &Path| sysroot.join("lib/rustlib").join(WASM_TARGET).is_dir();
    if has_target(&sysroot) {
        return;
    }
    // rustup names the running toolchain in RUSTUP_TOOLCHAIN; its directory name otherwise.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").ok().or_else(|| {
        sysroot
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
    });
    let mut command = Command::new("rustup");
    command.args(["target", "add", WASM_TARGET]);
    if let Some(toolchain) = &toolchain {
        command.args(["--toolchain", toolchain]);
    }
    let fix = format!(
        "rustup target add {WASM_TARGET}{}",
        toolchain
            .as_deref()
            .map(|t| format!(" --toolchain {t}"))
            .unwrap_or_default()
    );
    println!("cargo:warning=the {WASM_TARGET} target is missing; running `{fix}`");
    let outcome = match command.status() {
        Ok(status) if status.success() && has_target(&sysroot) => return,
        Ok(status) => format!("`{fix}` exited with {status}"),
        Err(e) => format!("rustup could not be run ({e})"),
    };
    panic!(
        "{fix}\n\
         ^ run this, then build again: the web UI is compiled to WebAssembly and this toolchain \
         ({}) lacks the {WASM_TARGET} target; installing it automatically failed: {outcome}. \
         (TOLLGATE_SKIP_UI=1 builds without the UI.)",
        sysroot.display()
    );
}

fn build_ui(root: &Path, out: &Path) -> Result<Vec<Asset>, BoxError> {
    ensure_wasm_target();
    let target_dir = root.join("target/web-wasm");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args([
            "build",
            "-p",
            "tollgate-web",
            "--lib",
            "--target",
            "wasm32-unknown-unknown",
            "--profile",
            "wasm-release",
            // The outer build already brought Cargo.lock up to date for the whole workspace.
            "--locked",
            "--target-dir",
        ])
        .arg(&target_dir);
    if env::var_os("CARGO_NET_OFFLINE").is_some() {
        command.arg("--offline");
    }
    // The outer build's settings must not leak into the wasm build.
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key == "RUSTFLAGS"
            || key == "CARGO_ENCODED_RUSTFLAGS"
            || key == "CARGO_TARGET_DIR"
            || key == "CARGO_BUILD_TARGET"
            || key == "RUSTC_WORKSPACE_WRAPPER"
            || key.starts_with("CARGO_FEATURE_")
            || key.starts_with("CARGO_CFG_")
            || key.starts_with("CARGO_PROFILE_")
        {
            command.env_remove(key.as_ref());
        }
    }
    let status = command.status()?;
    if !status.success() {
        return Err(format!("cargo build of crates/web exited with {status}").into());
    }

    let wasm = target_dir.join("wasm32-unknown-unknown/wasm-release/tollgate_web.wasm");
    let generated = out.join("bindgen");
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .typescript(false)
        .generate(&generated)?;

    if generated.join("snippets").exists() {
        return Err(
            "wasm-bindgen wrote JS snippets (a dependency uses inline_js); \
                    embed them before allowing this"
                .into(),
        );
    }
    let wasm_bytes = fs::read(generated.join("tollgate_web_bg.wasm"))?;
    let wasm_name = format!("tollgate_web_bg-{}.wasm", digest(&wasm_bytes));
    let js = fs::read_to_string(generated.join("tollgate_web.js"))?;
    let app_name = format!("tollgate_web-{}.js", digest(js.as_bytes()));
    let boot = format!(
        "import init from './{app_name}';\ninit({{ module_or_path: '/assets/{wasm_name}' }});\n"
    );
    let boot_name = format!("boot-{}.js", digest(boot.as_bytes()));
    let static_dir = root.join("crates/web/static");
    let style = fs::read(static_dir.join("style.css"))?;
    let style_name = format!("style-{}.css", digest(&style));

    fs::write(out.join(&wasm_name), &wasm_bytes)?;
    fs::write(out.join(&app_name), js)?;
    fs::write(out.join(&boot_name), boot)?;
    fs::write(out.join(&style_name), style)?;
    let index = fs::read_to_string(static_dir.join("index.html"))?
        .replace("{{style}}", &style_name)
        .replace("{{app}}", &app_name)
        .replace("{{wasm}}", &wasm_name)
        .replace("{{boot}}", &boot_name);
    fs::write(out.join("index.html"), index)?;

    Ok(vec![
        Asset {
            name: wasm_name,
            content_type: "application/wasm",
        },
        Asset {
            name: app_name,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            name: boot_name,
            content_type: "text/javascript; charset=utf-8",
        },
        Asset {
            name: style_name,
            content_type: "text/css; charset=utf-8",
        },
    ])
}

fn placeholder(out: &Path) -> Result<Vec<Asset>, BoxError> {
    fs::write(
        out.join("index.html"),
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Tollgate</title>\
         </head><body><p>This build of Tollgate has no web UI (built with TOLLGATE_SKIP_UI).</p>\
         </body></html>",
    )?;
    Ok(Vec::new())
}

fn write_assets_rs(out: &Path, assets: &[Asset]) -> Result<(), BoxError> {
    let mut code = String::new();
    writeln!(
        code,
        "pub const INDEX_HTML: &str = include_str!({:?});",
        out.join("index.html").display().to_string()
    )?;
    writeln!(code, "pub static ASSETS: &[Asset] = &[")?;
    for asset in assets {
        writeln!(
            code,
            "    Asset {{ name: {:?}, content_type: {:?}, bytes: include_bytes!({:?}) }},",
            asset.name,
            asset.content_type,
            out.join(&asset.name).display().to_string()
        )?;
    }
    writeln!(code, "];")?;
    fs::write(out.join("assets.rs"), code)?;
    Ok(())
}

/// A short content fingerprint for cache-busting file names (not a security measure).
fn digest(bytes: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    format!("{:016x}", hasher.finish())
}
