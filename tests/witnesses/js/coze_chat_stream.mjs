// A streamed chat through @coze/api, the official JavaScript SDK, used as it documents:
// new CozeAPI({ token, baseURL }) and client.chat.stream(...) iterated to the end.
// Environment: COZE_BASE_URL, COZE_API_KEY, COZE_BOT_ID. Prints one JSON line:
//   events         the event names, in order
//   deltas         the contents of conversation.message.delta, joined
//   completed      the content of the conversation.message.completed of type "answer"
//   chat_status    the status of conversation.chat.completed's chat (null if none)
//   error_events   the data of each "error" event
//   finished       true when the iteration ran to its end
//   coze_error     {name, message} when a CozeError (or subclass) was thrown, else null
//   other_error    any other exception, as text, else null
//   event_types    Object.values(ChatEventType): the event names the SDK knows
// Run by tests/witnesses/test_witness_coze_js.py (after npm ci in this folder).
import { ChatEventType, CozeAPI, CozeError, RoleType } from '@coze/api';

const summary = {
  events: [],
  deltas: '',
  completed: null,
  chat_status: null,
  error_events: [],
  finished: false,
  coze_error: null,
  other_error: null,
  event_types: Object.values(ChatEventType),
};

try {
  const client = new CozeAPI({ token: process.env.COZE_API_KEY, baseURL: process.env.COZE_BASE_URL });
  const stream = await client.chat.stream({
    bot_id: process.env.COZE_BOT_ID,
    user_id: 'user_001',
    additional_messages: [{ role: RoleType.User, content: '你好,请介绍一下你自己', content_type: 'text' }],
  });
  for await (const part of stream) {
    summary.events.push(part.event);
    if (part.event === ChatEventType.CONVERSATION_MESSAGE_DELTA) {
      summary.deltas += part.data.content;
    } else if (part.event === ChatEventType.CONVERSATION_MESSAGE_COMPLETED && part.data.type === 'answer') {
      summary.completed = part.data.content;
    } else if (part.event === ChatEventType.CONVERSATION_CHAT_COMPLETED) {
      summary.chat_status = part.data.status;
    } else if (part.event === ChatEventType.ERROR) {
      summary.error_events.push(part.data);
    }
  }
  summary.finished = true;
} catch (error) {
  if (error instanceof CozeError) {
    summary.coze_error = { name: error.constructor.name, message: error.message };
  } else {
    summary.other_error = String(error?.stack ?? error);
  }
}

process.stdout.write(JSON.stringify(summary) + '\n');
