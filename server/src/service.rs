//! The backend-facing `RoomHooks` service: validate, dispatch, answer. Errors become statuses here
//! and nowhere else.

use std::{sync::Arc, time::Duration};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use roomhooks::v1::{
    self as pb, PostEventResponse, PreRoomCreateResponse, PreventResponse, hook_call, post_event,
    post_events_item, room_hooks_server::RoomHooks,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{
    deadline::CallContext,
    dispatch::{Dispatcher, NewPost},
    hook::Hook,
    ids::EventId,
    metrics::{BackendCounters, Method},
    post::PostEventData,
    validate,
    verdict::Verdict,
};

/// The most events one PostEvents call may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Serves `roomhooks.v1.RoomHooks`.
pub struct RoomHooksService {
    dispatcher: Dispatcher,
    max_timeout: Duration,
    counters: Arc<BackendCounters>,
    limits: Limits,
    in_flight: Arc<Semaphore>,
}

/// Limits on backend requests.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Requests served at once; more are shed with RESOURCE_EXHAUSTED.
    pub max_concurrent: usize,
    /// Largest encoded `custom_fields` of a room.
    pub max_custom_field_bytes: usize,
}

impl RoomHooksService {
    /// A service dispatching through `dispatcher`; no call takes longer than `max_timeout`.
    pub fn new(
        dispatcher: Dispatcher,
        max_timeout: Duration,
        counters: Arc<BackendCounters>,
        limits: Limits,
    ) -> Self {
        Self {
            dispatcher,
            max_timeout,
            counters,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent)),
            limits,
        }
    }

    /// A slot for one request, or RESOURCE_EXHAUSTED when the sidecar is at its limit.
    fn admit(&self) -> Result<OwnedSemaphorePermit, Status> {
        Arc::clone(&self.in_flight).try_acquire_owned().map_err(|_| {
            Status::resource_exhausted(format!(
                "the sidecar is serving {} backend calls already (--max-concurrent-backend-calls); \
                 retry with backoff",
                self.limits.max_concurrent
            ))
        })
    }

    /// Refuses rooms whose custom fields exceed the limit.
    fn check_fields(&self, room: Option<&pb::Room>, field: &str) -> Result<(), Status> {
        let size = room
            .and_then(|r| r.custom_fields.as_ref())
            .map_or(0, prost::Message::encoded_len);
        if size > self.limits.max_custom_field_bytes {
            return Err(Status::invalid_argument(format!(
                "{field}.custom_fields is {size} bytes encoded; the limit is {} \
                 (--max-custom-field-bytes)",
                self.limits.max_custom_field_bytes
            )));
        }
        Ok(())
    }

    /// Counts an answered request by its gRPC code.
    fn observe<T>(&self, method: Method, result: Result<T, Status>) -> Result<T, Status> {
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        self.counters.record(method, code);
        result
    }

    /// The context of a Pre call: its deadline, dry-run flag, request id and trace context.
    fn pre_context<T: PreRequest>(&self, req: &Request<T>) -> CallContext {
        let body = req.get_ref();
        self.context(req, body.dry_run(), body.request_id())
    }

    fn context<T>(&self, req: &Request<T>, dry_run: bool, request_id: &str) -> CallContext {
        CallContext::from_metadata(
            req.metadata(),
            self.max_timeout,
            dry_run,
            request_id.to_owned(),
        )
    }

    async fn veto(
        &self,
        hook: Hook,
        payload: hook_call::Payload,
        room_type: i32,
        ctx: CallContext,
    ) -> Result<Response<PreventResponse>, Status> {
        let span = tracing::info_span!(
            "backend_call",
            hook = hook.name(),
            dry_run = ctx.dry_run,
            request_id =
                (!ctx.request_id.is_empty()).then(|| tracing::field::display(&ctx.request_id))
        );
        #[cfg(feature = "otlp")]
        crate::otel::continue_trace(&span, &ctx.traceparent);
        let verdict = self
            .dispatcher
            .prevent(hook, payload, room_type, &ctx)
            .instrument(span)
            .await;
        Ok(Response::new(prevent_response(verdict)))
    }

    /// One post event of any kind, checked and turned into what the dispatcher queues.
    fn new_post(&self, event: post_events_item::Event) -> Result<NewPost, Status> {
        use post_events_item::Event as E;
        let (hook, event_id, wait, payload) = match event {
            E::RoomCreate(r) => (
                Hook::PostRoomCreate,
                r.event_id,
                r.wait_for_delivery,
                post_event::Payload::Room(self.stored_room(r.room)?),
            ),
            E::RoomDeleted(r) => (
                Hook::PostRoomDeleted,
                r.event_id,
                r.wait_for_delivery,
                post_event::Payload::Room(self.stored_room(r.room)?),
            ),
            E::UserJoined(r) => {
                let context = validate::joined(r.context)?;
                self.check_fields(context.room.as_ref(), "context.room")?;
                let payload = post_event::Payload::UserJoined(context);
                (
                    Hook::PostRoomUserJoined,
                    r.event_id,
                    r.wait_for_delivery,
                    payload,
                )
            }
            E::UserLeave(r) => {
                let context = validate::leave(r.context)?;
                self.check_fields(context.room.as_ref(), "context.room")?;
                let payload = post_event::Payload::UserLeave(context);
                (
                    Hook::PostRoomUserLeave,
                    r.event_id,
                    r.wait_for_delivery,
                    payload,
                )
            }
        };
        let room_type = match &payload {
            post_event::Payload::Room(room) => room.r#type,
            post_event::Payload::UserJoined(c) => room_type(&c.room),
            post_event::Payload::UserLeave(c) => room_type(&c.room),
        };
        let id = EventId::from_backend(&event_id)
            .map_err(|e| Status::invalid_argument(format!("event_id {e}")))?;
        Ok(NewPost {
            event: Arc::new(PostEventData::new(id, hook, payload)),
            room_type,
            wait,
        })
    }

    /// The stored room of a room post event, checked.
    fn stored_room(&self, room: Option<pb::Room>) -> Result<pb::Room, Status> {
        self.check_fields(room.as_ref(), "room")?;
        Ok(validate::stored_room(room, "room")?)
    }

    /// A single-event Post* call.
    async fn post_one<T>(
        &self,
        request: Request<T>,
        kind: fn(T) -> post_events_item::Event,
    ) -> Result<Response<PostEventResponse>, Status> {
        let _slot = self.admit()?;
        let ctx = self.context(&request, false, "");
        let post = self.new_post(kind(request.into_inner()))?;
        let span = tracing::info_span!("backend_call", hook = post.event.hook.name(),
            event_id = %post.event.id);
        #[cfg(feature = "otlp")]
        crate::otel::continue_trace(&span, &ctx.traceparent);
        let response = self
            .dispatcher
            .post(post, &ctx)
            .instrument(span)
            .await
            .map_err(|e| {
                Status::unavailable(format!(
                    "{e}; the event was not accepted: retry with the same event_id"
                ))
            })?;
        Ok(Response::new(response))
    }
}

/// What every Pre request carries besides its payload.
trait PreRequest {
    fn dry_run(&self) -> bool;
    fn request_id(&self) -> &str;
}

macro_rules! pre_request {
    ($($request:ty),*) => {$(
        impl PreRequest for $request {
            fn dry_run(&self) -> bool {
                self.dry_run
            }
            fn request_id(&self) -> &str {
                &self.request_id
            }
        }
    )*};
}

pre_request!(
    pb::PreRoomCreateRequest,
    pb::PreRoomDeleteRequest,
    pb::PreRoomUserJoinRequest,
    pb::PreRoomUserLeaveRequest
);

fn prevent_response(verdict: Verdict) -> PreventResponse {
    PreventResponse {
        allowed: verdict.allowed(),
        preventions: verdict.preventions,
        outcomes: verdict.outcomes,
    }
}

fn room_type(room: &Option<pb::Room>) -> i32 {
    room.as_ref().map_or(0, |r| r.r#type)
}

#[tonic::async_trait]
impl RoomHooks for RoomHooksService {
    async fn pre_room_create(
        &self,
        request: Request<pb::PreRoomCreateRequest>,
    ) -> Result<Response<PreRoomCreateResponse>, Status> {
        let result = async {
            let _slot = self.admit()?;
            let ctx = self.pre_context(&request);
            self.check_fields(request.get_ref().room.as_ref(), "room")?;
            let room = validate::pre_room_create(request.into_inner())?;
            let span = tracing::info_span!(
                "backend_call",
                hook = "PreRoomCreate",
                dry_run = ctx.dry_run,
                request_id =
                    (!ctx.request_id.is_empty()).then(|| tracing::field::display(&ctx.request_id))
            );
            #[cfg(feature = "otlp")]
            crate::otel::continue_trace(&span, &ctx.traceparent);
            let (verdict, room) = self
                .dispatcher
                .pre_room_create(room, &ctx)
                .instrument(span)
                .await;
            Ok(Response::new(PreRoomCreateResponse {
                allowed: verdict.allowed(),
                preventions: verdict.preventions,
                room: Some(room),
                outcomes: verdict.outcomes,
            }))
        }
        .await;
        self.observe(Method::PreRoomCreate, result)
    }

    async fn pre_room_delete(
        &self,
        request: Request<pb::PreRoomDeleteRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let result = async {
            let _slot = self.admit()?;
            let ctx = self.pre_context(&request);
            self.check_fields(request.get_ref().room.as_ref(), "room")?;
            let room = validate::pre_room_delete(request.into_inner())?;
            let room_type = room.r#type;
            self.veto(
                Hook::PreRoomDeletePrevent,
                hook_call::Payload::Room(room),
                room_type,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PreRoomDelete, result)
    }

    async fn pre_room_user_join(
        &self,
        request: Request<pb::PreRoomUserJoinRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let result = async {
            let _slot = self.admit()?;
            let ctx = self.pre_context(&request);
            let context = validate::pre_room_user_join(request.into_inner())?;
            self.check_fields(context.room.as_ref(), "context.room")?;
            let room_type = room_type(&context.room);
            self.veto(
                Hook::PreRoomUserJoined,
                hook_call::Payload::UserJoined(context),
                room_type,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PreRoomUserJoin, result)
    }

    async fn pre_room_user_leave(
        &self,
        request: Request<pb::PreRoomUserLeaveRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let result = async {
            let _slot = self.admit()?;
            let ctx = self.pre_context(&request);
            let context = validate::pre_room_user_leave(request.into_inner())?;
            self.check_fields(context.room.as_ref(), "context.room")?;
            let room_type = room_type(&context.room);
            self.veto(
                Hook::PreRoomUserLeave,
                hook_call::Payload::UserLeave(context),
                room_type,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PreRoomUserLeave, result)
    }

    async fn post_room_create(
        &self,
        request: Request<pb::PostRoomCreateRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = self
            .post_one(request, post_events_item::Event::RoomCreate)
            .await;
        self.observe(Method::PostRoomCreate, result)
    }

    async fn post_room_deleted(
        &self,
        request: Request<pb::PostRoomDeletedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = self
            .post_one(request, post_events_item::Event::RoomDeleted)
            .await;
        self.observe(Method::PostRoomDeleted, result)
    }

    async fn post_room_user_joined(
        &self,
        request: Request<pb::PostRoomUserJoinedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = self
            .post_one(request, post_events_item::Event::UserJoined)
            .await;
        self.observe(Method::PostRoomUserJoined, result)
    }

    async fn post_room_user_leave(
        &self,
        request: Request<pb::PostRoomUserLeaveRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = self
            .post_one(request, post_events_item::Event::UserLeave)
            .await;
        self.observe(Method::PostRoomUserLeave, result)
    }

    async fn post_events(
        &self,
        request: Request<pb::PostEventsRequest>,
    ) -> Result<Response<pb::PostEventsResponse>, Status> {
        let result = async {
            let _slot = self.admit()?;
            let ctx = self.context(&request, false, "");
            let items = request.into_inner().events;
            if items.len() > MAX_BATCH_EVENTS {
                return Err(Status::invalid_argument(format!(
                    "events has {} entries; at most {MAX_BATCH_EVENTS} per PostEvents call: \
                     split the batch",
                    items.len()
                )));
            }
            let posts = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let event = item.event.ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "events[{i}] has no event set (room_create, room_deleted, \
                             user_joined or user_leave)"
                        ))
                    })?;
                    self.new_post(event).map_err(|status| {
                        Status::invalid_argument(format!("events[{i}].{}", status.message()))
                    })
                })
                .collect::<Result<Vec<_>, Status>>()?;
            let span =
                tracing::info_span!("backend_call", hook = "PostEvents", events = posts.len());
            #[cfg(feature = "otlp")]
            crate::otel::continue_trace(&span, &ctx.traceparent);
            let results = self
                .dispatcher
                .post_batch(posts, &ctx)
                .instrument(span)
                .await
                .map_err(|e| {
                    Status::unavailable(format!(
                        "{e}; the batch was not accepted as a whole: retry it with the same \
                         event_ids (events already queued are de-duplicated)"
                    ))
                })?;
            Ok(Response::new(pb::PostEventsResponse { results }))
        }
        .await;
        self.observe(Method::PostEvents, result)
    }
}
