//! The app-facing `AppRuntime` service: one bidirectional stream per app instance. The first
//! message must be `Register`; then results and acks flow in while calls and events flow out.

use std::{pin::Pin, sync::Arc, time::Duration};

use futures_util::{Stream, StreamExt};
use roomhooks::v1::{
    AppMessage, Registered, RuntimeMessage, app_message::Msg as In, runtime_message::Msg as Out,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    apps::frame::Frame,
    apps::instance::OUTBOUND_CAPACITY,
    apps::registry::{AdmitError, NewInstance, Registry},
    apps::settings::SettingsRefusal,
    apps::spec::{AppSpec, TimeoutLimits},
    cluster::Link,
    edge::auth,
    ids::{AppId, InstanceId},
    lifecycle::drain::Drain,
    lifecycle::tasks::Tasks,
};

mod read;

use read::read_loop;

/// The stream of calls and events sent to one instance.
pub type OutboundStream = Pin<Box<dyn Stream<Item = Result<Frame, Status>> + Send>>;

/// How instance liveness is checked (`Config::liveness`; `Default` is a blank, zeros).
#[derive(Clone, Copy, Debug, Default)]
pub struct Liveness {
    /// How often a Heartbeat is sent.
    pub interval: Duration,
    /// Silence after which the instance is disconnected.
    pub timeout: Duration,
}

/// Serves `roomhooks.v1.AppRuntime`.
pub struct AppRuntimeService {
    liveness: Liveness,
    registry: Arc<Registry>,
    /// Whether app tokens are configured: then every app must present its own.
    app_auth: bool,
    limits: TimeoutLimits,
    register_timeout: Duration,
    drain: Arc<Drain>,
    tasks: Tasks,
    /// Cluster mode: registrations are declared to the cluster.
    link: Option<Link>,
}

impl AppRuntimeService {
    /// A service admitting apps into `registry` until `drain` begins; read loops are owned by
    /// `tasks`. In cluster mode (`link`), each registration is declared to the cluster.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        liveness: Liveness,
        registry: Arc<Registry>,
        app_auth: bool,
        limits: TimeoutLimits,
        register_timeout: Duration,
        drain: Arc<Drain>,
        tasks: Tasks,
        link: Option<Link>,
    ) -> Self {
        Self {
            liveness,
            registry,
            app_auth,
            limits,
            register_timeout,
            drain,
            tasks,
            link,
        }
    }
}

impl AppRuntimeService {
    /// `AppRuntime.Connect`: admits the instance after its `Register`, then streams calls and
    /// events to it while a read loop takes its answers.
    pub async fn connect(
        &self,
        request: Request<Streaming<AppMessage>>,
    ) -> Result<Response<OutboundStream>, Status> {
        if self.drain.has_begun() {
            return Err(AdmitError::ShuttingDown.into());
        }
        let peer = request.remote_addr();
        let presented = auth::bearer(request.metadata()).map(str::to_owned);
        let mut inbound = request.into_inner();
        let register = self.first_register(&mut inbound).await?;
        let spec = self.spec(&register, presented.as_deref())?;
        let instance_id = if register.instance_id.is_empty() {
            InstanceId::generate(&spec.app_id)
        } else {
            InstanceId::parse(&register.instance_id)
                .map_err(|e| Status::invalid_argument(format!("Register.instance_id {e}")))?
        };

        let (tx, rx) = mpsc::channel(OUTBOUND_CAPACITY);
        // Queued before the instance is visible, so it precedes every call.
        let registered = RuntimeMessage {
            msg: Some(Out::Registered(Registered {
                app_id: spec.app_id.to_string(),
                instance_id: instance_id.to_string(),
            })),
        };
        tx.try_send(Ok(registered.into()))
            .map_err(|_| Status::internal("could not queue Registered on a fresh stream"))?;
        let app_id = spec.app_id.clone();
        let remembered = spec.clone();
        let (instance, posts) = self
            .registry
            .admit(
                spec,
                NewInstance {
                    id: instance_id,
                    version: register.version,
                    peer,
                    outbound: tx,
                },
            )
            .inspect_err(|err| tracing::warn!(%app_id, "refused an app instance: {err}"))?;
        tracing::info!(%app_id, instance_id = %instance.id, version = %instance.version,
            peer = peer.map(tracing::field::display), "app instance registered");
        self.registry
            .store()
            .put_app(&remembered, &instance.version)
            .await;
        if let Some(link) = &self.link {
            let enabled = self
                .registry
                .snapshot()
                .app(&app_id)
                .is_none_or(|app| app.enabled);
            link.registered(&remembered, &instance.version, enabled)
                .await;
        }

        let cut = instance.cut_token().clone().cancelled_owned();
        self.tasks.spawn(read_loop(
            self.liveness,
            Arc::clone(&self.registry),
            instance,
            posts,
            inbound,
            self.tasks.stopping().clone(),
            self.link.clone(),
        ));
        Ok(Response::new(Box::pin(
            ReceiverStream::new(rx).take_until(cut),
        )))
    }

    /// The stream's first message, which must be `Register`, within `--register-timeout`.
    async fn first_register(
        &self,
        inbound: &mut Streaming<AppMessage>,
    ) -> Result<roomhooks::v1::Register, Status> {
        let first = tokio::time::timeout(self.register_timeout, inbound.message())
            .await
            .map_err(|_| {
                Status::deadline_exceeded(format!(
                    "no Register within {:?}: send Register as the first message",
                    self.register_timeout
                ))
            })??;
        match first.and_then(|m| m.msg) {
            Some(In::Register(register)) => Ok(register),
            Some(In::Result(_) | In::PostAck(_) | In::HeartbeatAck(_)) => {
                Err(Status::invalid_argument(
                    "the first AppMessage must be Register (got a result or post_ack)",
                ))
            }
            None => Err(Status::invalid_argument(
                "the stream ended or sent an empty AppMessage before Register",
            )),
        }
    }

    /// The app's validated spec, its token checked and the operator's settings applied.
    fn spec(
        &self,
        register: &roomhooks::v1::Register,
        presented: Option<&str>,
    ) -> Result<AppSpec, Status> {
        let mut spec = AppSpec::from_register(register, self.limits)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let settings = self.registry.settings(&spec.app_id);
        if self.app_auth {
            check_app_token(
                &spec.app_id,
                settings.and_then(|s| s.token.as_deref()),
                presented,
            )?;
        }
        if let Some(settings) = settings {
            settings
                .apply(&mut spec, self.limits.max)
                .map_err(|refusal| match refusal {
                    SettingsRefusal::HooksNotAllowed { .. } => {
                        Status::permission_denied(refusal.to_string())
                    }
                    SettingsRefusal::MissingEssential { .. } => {
                        Status::failed_precondition(refusal.to_string())
                    }
                })?;
        }
        Ok(spec)
    }
}

/// Lets an app in only with the token configured for its own app id.
fn check_app_token(
    app_id: &AppId,
    expected: Option<&str>,
    presented: Option<&str>,
) -> Result<(), Status> {
    let Some(presented) = presented else {
        return Err(Status::unauthenticated(format!(
            "app {app_id:?} must send its token: `authorization: Bearer <token>`"
        )));
    };
    match expected {
        Some(expected) if auth::token_matches(expected, presented) => Ok(()),
        Some(_) => Err(Status::permission_denied(format!(
            "the token presented does not belong to app {app_id:?}"
        ))),
        None => Err(Status::permission_denied(format!(
            "no token is configured for app {app_id:?}; add apps.{app_id}.token to the sidecar's config"
        ))),
    }
}

/// An instance the registry refused, as the status its stream ends with.
impl From<AdmitError> for Status {
    fn from(err: AdmitError) -> Self {
        match err {
            AdmitError::TooManyApps { .. } | AdmitError::TooManyInstances { .. } => {
                Status::resource_exhausted(err.to_string())
            }
            AdmitError::Mismatch { .. } | AdmitError::DuplicateInstance { .. } => {
                Status::failed_precondition(err.to_string())
            }
            AdmitError::ShuttingDown => Status::unavailable(err.to_string()),
        }
    }
}
