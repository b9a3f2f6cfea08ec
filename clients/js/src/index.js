// @taskstream/client: the taskstream WebSocket protocol and REST API, for browsers and node.
export { TaskstreamSocket, USER_STREAM, CLOSE, HANDLED_MESSAGE_TYPES, socketUrl } from './socket.js';
export { TaskstreamApi, ApiError } from './api.js';
export { SERVER_MESSAGE_TYPES, CLIENT_MESSAGE_TYPES, EVENT_NAMES, ERROR_CODES } from './messages.js';
