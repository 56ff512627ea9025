//! Reading secrets: from a file, from stdin (`-` or a pipe), or from a hidden prompt. Never
//! from the command line, where every user of the machine sees them in `ps`.

use std::io::{IsTerminal, Read};
use std::path::Path;

use super::client::CliError;

/// Reads the secret `what`, which the command takes through `flag` (named in the hint when it is
/// empty).
pub fn read_secret(what: &str, flag: &str, file: Option<&Path>) -> Result<String, CliError> {
    let raw = match file {
        Some(path) if path == Path::new("-") => read_stdin(what)?,
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("reading the {what} from {}: {e}", path.display())))?,
        None if std::io::stdin().is_terminal() => rpassword::prompt_password(format!("{what}: "))
            .map_err(|e| CliError::Usage(format!("reading the {what}: {e}")))?,
        None => read_stdin(what)?,
    };
    let secret = raw.trim_end_matches(['\n', '\r']).to_owned();
    if secret.is_empty() {
        return Err(CliError::Usage(format!(
            "the {what} is empty: give it in a file ({flag} FILE), on stdin, or at the prompt"
        )));
    }
    Ok(secret)
}

fn read_stdin(what: &str) -> Result<String, CliError> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("reading the {what} from stdin: {e}")))?;
    Ok(text)
}

/// Asks `question` on a terminal and goes on only on "y" or "yes". Without a terminal it refuses
/// (exit 2), naming `--yes`: a script must say so explicitly.
pub fn confirm(question: &str) -> Result<(), CliError> {
    if !std::io::stdin().is_terminal() {
        return Err(CliError::Usage(format!("{question} Refused without a terminal to ask on: add --yes")));
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| CliError::Usage(format!("reading the answer: {e}")))?;
    match answer.trim().to_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::Usage("not confirmed; nothing was changed".into())),
    }
}
