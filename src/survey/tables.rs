//! The survey for people: a terminal table, Markdown and CSV, one row per architecture.

use super::SurveyRow;

/// A Markdown-style table with padded columns.
pub(crate) fn pipe_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .chain([header[c].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[&str]| -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut s = line(header);
    s += &line(&rule.iter().map(String::as_str).collect::<Vec<_>>());
    for row in rows {
        s += &line(&row.iter().map(String::as_str).collect::<Vec<_>>());
    }
    s
}

/// `blindspot survey`'s terminal table: grouped by family, one line per architecture and its
/// interpretation beneath.
pub fn survey_table(rows: &[SurveyRow]) -> String {
    let mut s = format!(
        "{:<24} {:>13}  {:<44} {:>10} {:>7}  {:<18} {}\n",
        "architecture", "input", "first linear layer", "nullity", "null %", "per patch", "method"
    );
    let mut family = None;
    for r in rows {
        if family != Some(&r.family) {
            s += &format!("── {} ──\n", r.family);
            family = Some(&r.family);
        }
        let nullity = match r.measured_nullity {
            Some(m) if r.kind != "catalogue" => format!("{} | {m}", r.structural_nullity),
            _ => r.structural_nullity.to_string(),
        };
        s += &format!(
            "{:<24} {:>13}  {:<44} {:>10} {:>6.1}%  {:<18} {}\n    {}\n",
            r.name,
            dims(&r.input),
            r.first_layer.description,
            nullity,
            100.0 * r.null_fraction,
            per_patch(r),
            if r.nullity_proved { "proved" } else { "generic count" },
            r.interpretation
        );
        if r.kind != "catalogue" {
            s += &format!(
                "    measured with the file's weights: {} ({})\n",
                r.measured_nullity.map_or("not decided".to_string(), |m| m.to_string()),
                r.measured_method.as_deref().unwrap_or("")
            );
        }
    }
    s += "nullity: ignored input directions with generic random weights of the same geometry \
          (model files: structural | measured); proved = exact for the random draw, \
          generic count = exact zeros + (inputs − outputs), full rank of the rest not proved at this size.\n";
    s
}

fn dims(v: &[usize]) -> String {
    v.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("×")
}

fn per_patch(r: &SurveyRow) -> String {
    match (&r.patch, r.per_patch_nullity) {
        (Some(p), Some(k)) => format!("{k}/{} ×{}", p.fan_in, p.patches),
        _ => "—".into(),
    }
}

/// The columns of `--markdown` and `--csv`.
fn survey_columns(r: &SurveyRow) -> Vec<String> {
    vec![
        r.name.clone(),
        r.family.clone(),
        r.task.clone(),
        dims(&r.input),
        r.first_layer.description.clone(),
        r.structural_nullity.to_string(),
        format!("{:.4}", r.null_fraction),
        r.per_patch_nullity.map_or(String::new(), |k| k.to_string()),
        r.measured_nullity.map_or(String::new(), |k| k.to_string()),
        r.method.clone(),
        r.interpretation.clone(),
        r.source.clone(),
    ]
}

const SURVEY_HEADER: [&str; 12] = [
    "name",
    "family",
    "task",
    "input",
    "first_layer",
    "structural_nullity",
    "null_fraction",
    "per_patch_nullity",
    "measured_nullity",
    "method",
    "interpretation",
    "source",
];

/// `blindspot survey --markdown`: one GitHub table.
pub fn survey_markdown(rows: &[SurveyRow]) -> String {
    let cell = |v: &str| v.replace('|', "\\|");
    let mut s = format!(
        "| {} |\n|{}\n",
        SURVEY_HEADER.join(" | "),
        "---|".repeat(SURVEY_HEADER.len())
    );
    for r in rows {
        let cells: Vec<String> = survey_columns(r).iter().map(|c| cell(c)).collect();
        s += &format!("| {} |\n", cells.join(" | "));
    }
    s
}

/// `blindspot survey --csv` (RFC 4180 quoting).
pub fn survey_csv(rows: &[SurveyRow]) -> String {
    let quote = |v: &str| {
        if v.contains([',', '"', '\n']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v.to_string()
        }
    };
    let mut s = SURVEY_HEADER.join(",") + "\n";
    for r in rows {
        s += &(survey_columns(r).iter().map(|c| quote(c)).collect::<Vec<_>>().join(",") + "\n");
    }
    s
}
