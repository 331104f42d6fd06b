//! `volley merge A.json B.json ...`: results of one script made side by side (one per
//! machine or execution segment) merged exactly, its thresholds and an SLO file's judged
//! on the whole; exit 99 when one fails. Printing only: the merge is `report::merge`.

use crate::engine::ExitCode;
use crate::report::merge::{self, Input};
use std::path::PathBuf;

/// Options of `volley merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Results to merge (`volley run --out json=FILE`, schema volley.run/1).
    #[arg(value_name = "RESULT.json", required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// Thresholds (and grades) from an SLO file, judged on the merge.
    #[arg(long, value_name = "FILE")]
    pub slo: Option<PathBuf>,
    /// The SLO file's environment (`[environments.NAME]`).
    #[arg(long, value_name = "NAME", requires = "slo")]
    pub environment: Option<String>,
    /// Where to write the merged result: `json=FILE` (schema volley.run/1).
    #[arg(long, value_name = "json=FILE")]
    pub out: Vec<String>,
}

/// Runs `volley merge`.
pub fn execute(args: MergeArgs) -> i32 {
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::Usage.code()
        }
    }
}

fn run(args: &MergeArgs) -> Result<i32, String> {
    let mut outs = Vec::new();
    for o in &args.out {
        let spec = crate::report::parse_out(o)?;
        if spec.kind != "json" {
            return Err(format!(
                "volley merge writes `json=FILE`, not `{}`; hint: the merged result is a volley.run/1 document (other outputs need a run's live aggregate)",
                spec.kind
            ));
        }
        outs.push(PathBuf::from(spec.target));
    }
    let slo = match &args.slo {
        Some(path) => Some(crate::engine::slo::load(path, args.environment.as_deref())?),
        None => None,
    };
    let mut inputs = Vec::new();
    for f in &args.files {
        inputs.push(Input { file: f.display().to_string(), doc: crate::report::json::read(f)? });
    }
    let mut merged = merge::merge(&inputs).map_err(|e| e.to_string())?;
    merge::judge(&mut merged, &inputs, slo.as_ref().map(|s| s.thresholds.as_slice()).unwrap_or_default());
    let bands = slo.as_ref().map(|s| s.bands).unwrap_or_default();
    merge::grade(&mut merged.doc, &bands);
    let files: Vec<String> = inputs.iter().map(|i| i.file.clone()).collect();
    print!("{}", merge::render(&merged.doc, &files));
    for path in &outs {
        let text = serde_json::to_string_pretty(&merged.doc).map_err(|e| e.to_string())? + "\n";
        crate::report::write_file(path, &text)?;
        println!("wrote {}", path.display());
    }
    Ok(merged.doc.exit_code)
}
