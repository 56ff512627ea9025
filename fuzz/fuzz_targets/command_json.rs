//! Any bytes as a command body: parsing never panics; whatever parses is prepared (sealed),
//! decided on a fresh integration and, when accepted, applied; a refusal changes nothing.
#![no_main]

use golive::domain::{self, Actor, Context, HttpUrl, Integration, Origin, Playbook};
use golive::ids::SequentialIds;
use golive::secrets::{DataKey, IntegrationSealer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    let ids = SequentialIds::starting_at(1);
    let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    let ctx = Context { now, actor: Actor::parse("fuzz").unwrap(), ids: &ids };
    let public = HttpUrl::parse("https://golive.example").unwrap();
    let playbook = Playbook::guide_default(HttpUrl::parse("https://golive.example/oauth/gitlab/callback").unwrap());
    let open = domain::parse_open_request(serde_json::json!({"customer": "Fuzz", "gitlab_url": "https://gitlab.fuzz.example"})).unwrap();
    let opened = domain::open(open, playbook, public.clone(), &ctx).unwrap();
    let state = Integration::from_opened(&opened[0], now).unwrap();
    for origin in [Origin::Public, Origin::Internal] {
        let Ok(request) = domain::parse_request(value.clone(), origin) else { continue };
        let key = DataKey::from_bytes([9; 32]);
        let mut sealer = IntegrationSealer::new(&key, state.id, &public);
        let command = request.prepare(&mut sealer);
        match state.decide(&command, &ctx) {
            Ok(events) => {
                let mut next = state.clone();
                for event in &events {
                    next.apply(event, now);
                }
                let _ = next.checklist();
                let _ = next.next_steps(now);
            }
            Err(_) => {}
        }
    }
});
