//! The sidecar's own series: answered requests by service, method and code; readiness; the build.

use std::fmt::Write;

use super::Sources;
use crate::edge::requests::code_name;

/// Every counted RPC by service, method and code.
pub(super) fn request_counters(out: &mut String, sources: &Sources) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_backend_requests_total RPCs answered by RoomHooks, Admin and Health, by \
         service, method and gRPC code."
    );
    let _ = writeln!(out, "# TYPE roomhooks_backend_requests_total counter");
    for (rpc, code, n) in sources.requests.samples() {
        let _ = writeln!(
            out,
            "roomhooks_backend_requests_total{{service=\"{}\",method=\"{}\",code=\"{}\"}} {n}",
            rpc.service(),
            rpc.method(),
            code_name(code)
        );
    }
}

/// Readiness and the build.
pub(super) fn sidecar_info(out: &mut String, sources: &Sources) {
    let _ = writeln!(
        out,
        "# HELP roomhooks_ready 1 while the sidecar takes new calls, 0 once it drains for shutdown."
    );
    let _ = writeln!(out, "# TYPE roomhooks_ready gauge");
    let _ = writeln!(
        out,
        "roomhooks_ready {}",
        u8::from(!sources.drain.has_begun())
    );
    let _ = writeln!(
        out,
        "# HELP roomhooks_build_info The running build: its version and git commit."
    );
    let _ = writeln!(out, "# TYPE roomhooks_build_info gauge");
    let _ = writeln!(
        out,
        "roomhooks_build_info{{version=\"{}\",commit=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION"),
        option_env!("ROOMHOOKS_COMMIT").unwrap_or("unknown")
    );
}
