//! A typed client for chat backends written in Rust: the eight `RoomHooks` calls.

use std::time::Duration;

use roomhooks::v1::{
    self as pb, PostEventResponse, PreRoomCreateResponse, PreventResponse,
    room_hooks_client::RoomHooksClient as Raw,
};
use tonic::{
    Request, Status,
    transport::{Channel, ClientTlsConfig},
};

use crate::SdkError;

/// Calls the sidecar on behalf of a chat backend. Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct RoomHooksClient {
    raw: Raw<Channel>,
    deadline: Option<Duration>,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl RoomHooksClient {
    /// Connects to the sidecar at `endpoint` (e.g. `http://127.0.0.1:50051`; without a scheme
    /// `http://` is assumed).
    pub async fn connect(endpoint: impl Into<String>) -> Result<Self, SdkError> {
        Self::connect_with(endpoint, None).await
    }

    /// Connects over TLS (`https://` endpoint; mutual TLS when `tls` carries an identity).
    pub async fn connect_tls(
        endpoint: impl Into<String>,
        tls: ClientTlsConfig,
    ) -> Result<Self, SdkError> {
        Self::connect_with(endpoint, Some(tls)).await
    }

    async fn connect_with(
        endpoint: impl Into<String>,
        tls: Option<ClientTlsConfig>,
    ) -> Result<Self, SdkError> {
        let endpoint = crate::connection::with_scheme(endpoint.into(), tls.is_some())?;
        let mut builder = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .map_err(|e| SdkError::InvalidEndpoint(format!("{endpoint}: {e}")))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5));
        if let Some(tls) = tls {
            builder = builder
                .tls_config(tls)
                .map_err(|e| SdkError::InvalidEndpoint(format!("{endpoint}: TLS: {e}")))?;
        }
        let channel = builder.connect().await.map_err(SdkError::Connect)?;
        Ok(Self::from_channel(channel))
    }

    /// Uses an existing channel.
    pub fn from_channel(channel: Channel) -> Self {
        Self {
            raw: Raw::new(channel),
            deadline: None,
            authorization: None,
        }
    }

    /// Sends the backend token (`authorization: Bearer <token>`) on every call.
    pub fn with_token(mut self, token: &str) -> Result<Self, SdkError> {
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| SdkError::Protocol("the backend token is not valid in a header".into()))?;
        self.authorization = Some(value);
        Ok(self)
    }

    /// Sets a gRPC deadline on every call (the sidecar answers before it passes).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(deadline) = self.deadline {
            request.set_timeout(deadline);
        }
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        request
    }

    /// Runs Prevent, Extend and Modify for a room about to be created.
    pub async fn pre_room_create(
        &self,
        request: pb::PreRoomCreateRequest,
    ) -> Result<PreRoomCreateResponse, Status> {
        let req = self.request(request);
        Ok(self.raw.clone().pre_room_create(req).await?.into_inner())
    }

    /// Asks whether a room may be deleted.
    pub async fn pre_room_delete(
        &self,
        request: pb::PreRoomDeleteRequest,
    ) -> Result<PreventResponse, Status> {
        let req = self.request(request);
        Ok(self.raw.clone().pre_room_delete(req).await?.into_inner())
    }

    /// Asks whether a user may join a room.
    pub async fn pre_room_user_join(
        &self,
        request: pb::PreRoomUserJoinRequest,
    ) -> Result<PreventResponse, Status> {
        let req = self.request(request);
        Ok(self.raw.clone().pre_room_user_join(req).await?.into_inner())
    }

    /// Asks whether a user may leave a room.
    pub async fn pre_room_user_leave(
        &self,
        request: pb::PreRoomUserLeaveRequest,
    ) -> Result<PreventResponse, Status> {
        let req = self.request(request);
        Ok(self
            .raw
            .clone()
            .pre_room_user_leave(req)
            .await?
            .into_inner())
    }

    /// Notifies that a room was created.
    pub async fn post_room_create(
        &self,
        request: pb::PostRoomCreateRequest,
    ) -> Result<PostEventResponse, Status> {
        let req = self.request(request);
        Ok(self.raw.clone().post_room_create(req).await?.into_inner())
    }

    /// Notifies that a room was deleted.
    pub async fn post_room_deleted(
        &self,
        request: pb::PostRoomDeletedRequest,
    ) -> Result<PostEventResponse, Status> {
        let req = self.request(request);
        Ok(self.raw.clone().post_room_deleted(req).await?.into_inner())
    }

    /// Notifies that a user joined a room.
    pub async fn post_room_user_joined(
        &self,
        request: pb::PostRoomUserJoinedRequest,
    ) -> Result<PostEventResponse, Status> {
        let req = self.request(request);
        Ok(self
            .raw
            .clone()
            .post_room_user_joined(req)
            .await?
            .into_inner())
    }

    /// Notifies that a user left a room.
    pub async fn post_room_user_leave(
        &self,
        request: pb::PostRoomUserLeaveRequest,
    ) -> Result<PostEventResponse, Status> {
        let req = self.request(request);
        Ok(self
            .raw
            .clone()
            .post_room_user_leave(req)
            .await?
            .into_inner())
    }

    /// Sends many post events in one call (the fast path for high event rates): one result per
    /// event, in order. One invalid event refuses the whole batch with INVALID_ARGUMENT.
    pub async fn post_events(
        &self,
        events: Vec<pb::PostEventsItem>,
    ) -> Result<Vec<PostEventResponse>, Status> {
        let req = self.request(pb::PostEventsRequest { events });
        Ok(self
            .raw
            .clone()
            .post_events(req)
            .await?
            .into_inner()
            .results)
    }
}

/// The message to show the end user when an action was prevented.
pub trait UserMessage {
    /// The first veto's message, or `None` when the action is allowed.
    fn user_message(&self) -> Option<&str>;
}

impl UserMessage for PreventResponse {
    fn user_message(&self) -> Option<&str> {
        self.preventions.first().map(|p| p.message.as_str())
    }
}

impl UserMessage for PreRoomCreateResponse {
    fn user_message(&self) -> Option<&str> {
        self.preventions.first().map(|p| p.message.as_str())
    }
}
