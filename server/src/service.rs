//! The backend-facing `RoomHooks` service: validate, dispatch, answer. Errors become statuses here
//! and nowhere else.

use std::{sync::Arc, time::Duration};

use roomhooks::v1::{
    self as pb, PostEventResponse, PreRoomCreateResponse, PreventResponse, hook_call, post_event,
    room_hooks_server::RoomHooks,
};
use tonic::{Request, Response, Status};
use tracing::Instrument;

use crate::{
    deadline::CallContext,
    dispatch::Dispatcher,
    hook::Hook,
    ids::EventId,
    metrics::{BackendCounters, Method},
    post::PostEventData,
    validate,
    verdict::Verdict,
};

/// Serves `roomhooks.v1.RoomHooks`.
pub struct RoomHooksService {
    dispatcher: Dispatcher,
    max_timeout: Duration,
    counters: Arc<BackendCounters>,
}

impl RoomHooksService {
    /// A service dispatching through `dispatcher`; no call takes longer than `max_timeout`.
    pub fn new(
        dispatcher: Dispatcher,
        max_timeout: Duration,
        counters: Arc<BackendCounters>,
    ) -> Self {
        Self {
            dispatcher,
            max_timeout,
            counters,
        }
    }

    /// Counts an answered request by its gRPC code.
    fn observe<T>(&self, method: Method, result: Result<T, Status>) -> Result<T, Status> {
        let code = result
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        self.counters.record(method, code);
        result
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
        let span = tracing::info_span!("backend_call", hook = hook.name(),
            request_id = %ctx.request_id, dry_run = ctx.dry_run);
        let verdict = self
            .dispatcher
            .prevent(hook, payload, room_type, &ctx)
            .instrument(span)
            .await;
        Ok(Response::new(prevent_response(verdict)))
    }

    async fn post(
        &self,
        hook: Hook,
        event_id: &str,
        payload: post_event::Payload,
        room_type: i32,
        wait: bool,
        ctx: CallContext,
    ) -> Result<Response<PostEventResponse>, Status> {
        let id = EventId::from_backend(event_id)
            .map_err(|e| Status::invalid_argument(format!("event_id {e}")))?;
        let span = tracing::info_span!("backend_call", hook = hook.name(), event_id = %id);
        let event = PostEventData { id, hook, payload };
        let response = self
            .dispatcher
            .post(event, room_type, wait, &ctx)
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
            let (dry_run, request_id) = (
                request.get_ref().dry_run,
                request.get_ref().request_id.clone(),
            );
            let ctx = self.context(&request, dry_run, &request_id);
            let room = validate::pre_room_create(request.into_inner())?;
            let span = tracing::info_span!("backend_call", hook = "PreRoomCreate",
                request_id = %ctx.request_id, dry_run = ctx.dry_run);
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
            let (dry_run, request_id) = (
                request.get_ref().dry_run,
                request.get_ref().request_id.clone(),
            );
            let ctx = self.context(&request, dry_run, &request_id);
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
            let (dry_run, request_id) = (
                request.get_ref().dry_run,
                request.get_ref().request_id.clone(),
            );
            let ctx = self.context(&request, dry_run, &request_id);
            let context = validate::pre_room_user_join(request.into_inner())?;
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
            let (dry_run, request_id) = (
                request.get_ref().dry_run,
                request.get_ref().request_id.clone(),
            );
            let ctx = self.context(&request, dry_run, &request_id);
            let context = validate::pre_room_user_leave(request.into_inner())?;
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
        let result = async {
            let ctx = self.context(&request, false, "");
            let req = request.into_inner();
            let room = validate::stored_room(req.room, "room")?;
            let room_type = room.r#type;
            let payload = post_event::Payload::Room(room);
            self.post(
                Hook::PostRoomCreate,
                &req.event_id,
                payload,
                room_type,
                req.wait_for_delivery,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PostRoomCreate, result)
    }

    async fn post_room_deleted(
        &self,
        request: Request<pb::PostRoomDeletedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = async {
            let ctx = self.context(&request, false, "");
            let req = request.into_inner();
            let room = validate::stored_room(req.room, "room")?;
            let room_type = room.r#type;
            let payload = post_event::Payload::Room(room);
            self.post(
                Hook::PostRoomDeleted,
                &req.event_id,
                payload,
                room_type,
                req.wait_for_delivery,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PostRoomDeleted, result)
    }

    async fn post_room_user_joined(
        &self,
        request: Request<pb::PostRoomUserJoinedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = async {
            let ctx = self.context(&request, false, "");
            let req = request.into_inner();
            let context = validate::joined(req.context)?;
            let room_type = room_type(&context.room);
            let payload = post_event::Payload::UserJoined(context);
            self.post(
                Hook::PostRoomUserJoined,
                &req.event_id,
                payload,
                room_type,
                req.wait_for_delivery,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PostRoomUserJoined, result)
    }

    async fn post_room_user_leave(
        &self,
        request: Request<pb::PostRoomUserLeaveRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        let result = async {
            let ctx = self.context(&request, false, "");
            let req = request.into_inner();
            let context = validate::leave(req.context)?;
            let room_type = room_type(&context.room);
            let payload = post_event::Payload::UserLeave(context);
            self.post(
                Hook::PostRoomUserLeave,
                &req.event_id,
                payload,
                room_type,
                req.wait_for_delivery,
                ctx,
            )
            .await
        }
        .await;
        self.observe(Method::PostRoomUserLeave, result)
    }
}
