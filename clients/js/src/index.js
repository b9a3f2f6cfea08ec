// @taskstream/client: the taskstream WebSocket protocol and REST API, for browsers and node.
export { TaskstreamSocket, USER_STREAM, CLOSE, HANDLED_MESSAGE_TYPES, socketUrl, projectStream, projectOf } from './socket.js';
export { TaskstreamApi, ApiError } from './api.js';
export { SERVER_MESSAGE_TYPES, CLIENT_MESSAGE_TYPES, EVENT_NAMES, ERROR_CODES } from './messages.js';

/** @typedef {import('./messages.js').Task} Task */
/** @typedef {import('./messages.js').Notification} Notification */
/** @typedef {import('./messages.js').Profile} Profile */
/** @typedef {import('./messages.js').EventMessage} EventMessage */
/** @typedef {import('./messages.js').EventName} EventName */
/** @typedef {import('./messages.js').ServerMessage} ServerMessage */
/** @typedef {import('./messages.js').ClientMessage} ClientMessage */
/** @typedef {import('./socket.js').SocketOptions} SocketOptions */
/** @typedef {import('./socket.js').SocketStatus} SocketStatus */
/** @typedef {import('./socket.js').ConnectionState} ConnectionState */
/** @typedef {import('./socket.js').ReloadRequest} ReloadRequest */
/** @typedef {import('./socket.js').Role} Role */
/** @typedef {import('./socket.js').StreamInfo} StreamInfo */
/** @typedef {import('./socket.js').StreamAdded} StreamAdded */
/** @typedef {import('./socket.js').StreamRemoved} StreamRemoved */
/** @typedef {import('./socket.js').Presence} Presence */
/** @typedef {import('./socket.js').PresenceChange} PresenceChange */
/** @typedef {import('./messages.js').Project} Project */
/** @typedef {import('./api.js').ProjectWithRole} ProjectWithRole */
/** @typedef {import('./api.js').ProjectMember} ProjectMember */
/** @typedef {import('./api.js').Invitation} Invitation */
/** @typedef {import('./api.js').User} User */
