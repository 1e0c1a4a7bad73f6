//! Test support shared by calbridge's EWS tests (this crate's, the simulator's end-to-end
//! tests): Microsoft's schemas and examples under `$CALBRIDGE_PROTOCOL_DIR` (default
//! `shared/protocol` beside the workspace), and schema validation with `xmllint`
//! (libxml2-utils), the validation recipe of `shared/protocol/ews/README.md`.
//!
//! Where the files or `xmllint` are missing, tests print that they were skipped and why;
//! under CI (`CI` set) that is a failure instead.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where the protocol reference files are.
pub fn protocol_dir() -> PathBuf {
    match std::env::var_os("CALBRIDGE_PROTOCOL_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/protocol")),
    }
}

fn skip(test: &str, why: &str) -> Option<PathBuf> {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}; CI must provide it (see .ci/run)");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// `shared/protocol/ews`, or `None` (after saying why) when it is absent outside CI.
pub fn ews_dir(test: &str) -> Option<PathBuf> {
    let d = protocol_dir().join("ews");
    if d.join("xsd").is_dir() && d.join("examples").is_dir() {
        Some(d)
    } else {
        skip(
            test,
            &format!("Microsoft's EWS schemas and examples are not at {} (set CALBRIDGE_PROTOCOL_DIR)", d.display()),
        )
    }
}

/// The example files of one operation folder (`FindItem`, …) whose names contain `kind`
/// (`request` or `response`), sorted.
pub fn examples(ews: &Path, operation: &str, kind: &str) -> Vec<(String, String)> {
    let dir = ews.join("examples").join(operation);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(&format!("-{kind}-")) && n.ends_with(".xml"))
        })
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// Half of Microsoft's examples carry `https://` in the SOAP namespace (a documentation
/// bug, see the examples' README); servers and clients use `http://`.
pub fn fix_soap_namespace(xml: &str) -> String {
    xml.replace("https://schemas.xmlsoap.org/soap/envelope/", "http://schemas.xmlsoap.org/soap/envelope/")
}

struct Validator {
    schema: PathBuf,
    dir: PathBuf,
}

static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();

fn validator(ews: &Path) -> &'static Result<Validator, String> {
    VALIDATOR.get_or_init(|| {
        if Command::new("xmllint").arg("--version").output().is_err() {
            return Err("xmllint is not installed (apt-get install libxml2-utils)".into());
        }
        let dir = std::env::temp_dir().join(format!("calbridge-xsd-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let template = std::fs::read_to_string(ews.join("xsd/soap-env-ews.xsd.template")).map_err(|e| e.to_string())?;
        let schema_dir = ews.join("xsd/exchange2016").canonicalize().map_err(|e| e.to_string())?;
        let schema = dir.join("env2016.xsd");
        std::fs::write(&schema, template.replace("SCHEMADIR", &schema_dir.to_string_lossy()))
            .map_err(|e| e.to_string())?;
        Ok(Validator { schema, dir })
    })
}

/// Validates a whole SOAP envelope against Microsoft's schema (the `exchange2016` variant).
/// `Ok(false)` when validation was skipped (outside CI, without the files or xmllint).
pub fn validate(test: &str, xml: &str) -> Result<bool, String> {
    let Some(ews) = ews_dir(test) else { return Ok(false) };
    let v = match validator(&ews) {
        Ok(v) => v,
        Err(why) => {
            skip(test, why);
            return Ok(false);
        }
    };
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = v.dir.join(format!("doc-{n}.xml"));
    std::fs::write(&file, xml).map_err(|e| e.to_string())?;
    let out = Command::new("xmllint")
        .arg("--noout")
        .arg("--schema")
        .arg(&v.schema)
        .arg(&file)
        .output()
        .map_err(|e| e.to_string())?;
    let _ = std::fs::remove_file(&file);
    if out.status.success() {
        Ok(true)
    } else {
        Err(format!("{}\n--- document ---\n{xml}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// Asserts that `xml` validates (or that validation was legitimately skipped).
pub fn assert_valid(test: &str, xml: &str) {
    if let Err(e) = validate(test, xml) {
        panic!("{test}: the XML does not validate against Microsoft's schema:\n{e}");
    }
}
