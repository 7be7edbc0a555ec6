//! Talking to a poi over HTTP from the command line (`povpoi preview --node`, `povpoi
//! upload`): its address checked, one blocking call at a time, and a refusal turned into
//! a message that says what to fix.

use std::time::Duration;

/// A poi at an address, with the group's key to send if there is one.
pub struct Poi {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Poi {
    /// The poi at `address` (`http://HOST:PORT`); `given` names where the address came
    /// from in the error (an option, an argument).
    pub fn at(address: &str, given: &str, key: Option<&str>, timeout: Duration) -> Result<Poi, String> {
        let base = address.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(format!("{given}: give the poi's address as http://HOST:PORT"));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Poi { runtime, client, base: base.into(), key: key.map(str::to_owned) })
    }

    /// Its address, as given without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Sends the request `build` makes from the client and the poi's address, with the key;
    /// the answer's body, or the poi's refusal (`hint` added for a 413).
    pub fn call(
        &self,
        build: impl FnOnce(&reqwest::Client, &str) -> reqwest::RequestBuilder,
        too_large_hint: &str,
    ) -> Result<Vec<u8>, String> {
        let base = &self.base;
        let mut request = build(&self.client, base);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        self.runtime.block_on(async {
            let answer = request.send().await.map_err(|e| format!("cannot reach {base}: {e}"))?;
            let status = answer.status();
            let body = answer.bytes().await.map_err(|e| format!("{base}: answer cut short: {e}"))?;
            if status.is_success() {
                return Ok(body.to_vec());
            }
            let error = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            let hint = match status.as_u16() {
                401 => " (pass the group's key with --key)",
                413 => too_large_hint,
                _ => "",
            };
            Err(format!("{base} answered {status}: {error}{hint}"))
        })
    }
}
