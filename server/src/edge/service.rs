//! The backend-facing `RoomHooks` service: validate, dispatch, answer. Errors become statuses here
//! and nowhere else.

use std::{sync::Arc, time::Duration};

use roomhooks::v1::{
    self as pb, PostEventResponse, PreRoomCreateResponse, PreventResponse, post_event,
    post_events_item, room_hooks_server::RoomHooks,
};
use tonic::{Request, Response, Status};

use crate::{
    dispatch::Dispatcher,
    dispatch::verdict::Verdict,
    edge::validate::{self, FieldsOf, VetoRequest},
    edge::{backend_call, deadline::CallContext},
    hook::Hook,
    ids::EventId,
    post::{
        PostEventData,
        accept::{Accept, NewPost},
    },
};

/// The most events one PostEvents call may carry.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Serves `roomhooks.v1.RoomHooks`: each handler validates, dispatches (or accepts) and shapes
/// the response. Admission, authentication, counting and decode statuses are the layers around
/// it ([`crate::edge::room_hooks`]).
pub struct RoomHooksService {
    dispatcher: Dispatcher,
    accept: Accept,
    max_timeout: Duration,
    max_custom_field_bytes: usize,
}

impl RoomHooksService {
    /// A service running Pre calls through `dispatcher` and accepting post events through
    /// `accept`; no call takes longer than `max_timeout`, no request carries more than
    /// `max_custom_field_bytes` of custom fields.
    pub fn new(
        dispatcher: Dispatcher,
        accept: Accept,
        max_timeout: Duration,
        max_custom_field_bytes: usize,
    ) -> Self {
        Self {
            dispatcher,
            accept,
            max_timeout,
            max_custom_field_bytes,
        }
    }

    /// The context of a Pre call: its deadline, dry-run flag, request id and trace context.
    fn pre_context<T: PreRequest>(&self, req: &Request<T>) -> CallContext {
        let body = req.get_ref();
        let ctx = self.context(req, body.dry_run(), body.request_id());
        backend_call::record_pre(&ctx);
        ctx
    }

    fn context<T>(&self, req: &Request<T>, dry_run: bool, request_id: &str) -> CallContext {
        backend_call::context(req, self.max_timeout, dry_run, request_id)
    }

    async fn veto(
        &self,
        request: VetoRequest,
        ctx: CallContext,
    ) -> Result<Response<PreventResponse>, Status> {
        let verdict = self.dispatcher.prevent(request, &ctx).await;
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
                validate::joined_fields(&context, self.max_custom_field_bytes)?;
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
                validate::leave_fields(&context, self.max_custom_field_bytes)?;
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
            post_event::Payload::Room(room) => room.r#type(),
            post_event::Payload::UserJoined(c) => validate::room_type(c.room.as_ref()),
            post_event::Payload::UserLeave(c) => validate::room_type(c.room.as_ref()),
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
        validate::custom_fields(
            self.max_custom_field_bytes,
            &[FieldsOf::Room("room", room.as_ref())],
        )?;
        Ok(validate::stored_room(room, "room")?)
    }

    /// A single-event Post* call.
    async fn post_one<T>(
        &self,
        request: Request<T>,
        kind: fn(T) -> post_events_item::Event,
    ) -> Result<Response<PostEventResponse>, Status> {
        let ctx = self.context(&request, false, "");
        let post = self.new_post(kind(request.into_inner()))?;
        backend_call::record_event(&post.event.id);
        let response = self.accept.post(post, &ctx).await.map_err(|e| {
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
        warnings: verdict.warnings,
    }
}

#[tonic::async_trait]
impl RoomHooks for RoomHooksService {
    async fn pre_room_create(
        &self,
        request: Request<pb::PreRoomCreateRequest>,
    ) -> Result<Response<PreRoomCreateResponse>, Status> {
        let ctx = self.pre_context(&request);
        let room = validate::create_request(request.into_inner(), self.max_custom_field_bytes)?;
        let (verdict, room) = self.dispatcher.pre_room_create(room, &ctx).await;
        Ok(Response::new(PreRoomCreateResponse {
            allowed: verdict.allowed(),
            preventions: verdict.preventions,
            room: Some(room),
            outcomes: verdict.outcomes,
            warnings: verdict.warnings,
        }))
    }

    async fn pre_room_delete(
        &self,
        request: Request<pb::PreRoomDeleteRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let ctx = self.pre_context(&request);
        let checked = validate::delete_request(request.into_inner(), self.max_custom_field_bytes)?;
        self.veto(checked, ctx).await
    }

    async fn pre_room_user_join(
        &self,
        request: Request<pb::PreRoomUserJoinRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let ctx = self.pre_context(&request);
        let checked = validate::join_request(request.into_inner(), self.max_custom_field_bytes)?;
        self.veto(checked, ctx).await
    }

    async fn pre_room_user_leave(
        &self,
        request: Request<pb::PreRoomUserLeaveRequest>,
    ) -> Result<Response<PreventResponse>, Status> {
        let ctx = self.pre_context(&request);
        let checked = validate::leave_request(request.into_inner(), self.max_custom_field_bytes)?;
        self.veto(checked, ctx).await
    }

    async fn post_room_create(
        &self,
        request: Request<pb::PostRoomCreateRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        self.post_one(request, post_events_item::Event::RoomCreate)
            .await
    }

    async fn post_room_deleted(
        &self,
        request: Request<pb::PostRoomDeletedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        self.post_one(request, post_events_item::Event::RoomDeleted)
            .await
    }

    async fn post_room_user_joined(
        &self,
        request: Request<pb::PostRoomUserJoinedRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        self.post_one(request, post_events_item::Event::UserJoined)
            .await
    }

    async fn post_room_user_leave(
        &self,
        request: Request<pb::PostRoomUserLeaveRequest>,
    ) -> Result<Response<PostEventResponse>, Status> {
        self.post_one(request, post_events_item::Event::UserLeave)
            .await
    }

    async fn post_events(
        &self,
        request: Request<pb::PostEventsRequest>,
    ) -> Result<Response<pb::PostEventsResponse>, Status> {
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
        backend_call::record_batch(posts.len());
        let results = self.accept.post_batch(posts, &ctx).await.map_err(|e| {
            Status::unavailable(format!(
                "{e}; the batch was not accepted as a whole: retry it with the same \
                     event_ids (events already queued are de-duplicated)"
            ))
        })?;
        Ok(Response::new(pb::PostEventsResponse { results }))
    }
}
