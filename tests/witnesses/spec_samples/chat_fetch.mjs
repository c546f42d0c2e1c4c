// The spec page's JavaScript client sample, transcribed from
// conformance/spec/agent-api.zh.md, section "客户端示例 (JavaScript)" (indentation restored;
// the page's rendering lost it).
//
// Changed, and only this: the base URL, API key and bot id come from the environment
// (COZE_BASE_URL, COZE_API_KEY, COZE_BOT_ID): Node's fetch needs an absolute URL where the
// page, written for a browser on the same origin, has '/v3/chat'; the key replaces
// 'your_api_key'; the bot id replaces 123456789 and is passed as the decimal string the
// server gave (a 19-digit id is beyond Number's exact range; String(botId) leaves it as it
// is). Every other line is the page's. What it prints is recorded by record.mjs
// (node --import ./record.mjs chat_fetch.mjs).
const BASE_URL = process.env.COZE_BASE_URL ?? '';
const API_KEY = process.env.COZE_API_KEY ?? 'your_api_key';
const BOT_ID = process.env.COZE_BOT_ID ?? 123456789;

const chatWithBot = async (botId, message) => {
  const response = await fetch(BASE_URL + '/v3/chat', {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Authorization': 'Bearer ' + API_KEY
    },
    body: JSON.stringify({
      bot_id: String(botId),
      user_id: 'user_001',
      stream: true,
      additional_messages: [
        {
          role: 'user',
          content: message,
          content_type: 'text'
        }
      ]
    })
  });

  const reader = response.body.getReader();
  const decoder = new TextDecoder();

  while (true) {
    const { done, value } = await reader.read();
    if (done) break;

    const chunk = decoder.decode(value);
    const lines = chunk.split('\n');

    for (const line of lines) {
      if (line.startsWith('event: ')) {
        const eventType = line.slice(7).trim();
        console.log('事件类型:', eventType);
      } else if (line.startsWith('data: ')) {
        const data = JSON.parse(line.slice(6));

        // 处理不同事件类型
        switch(data.event) {
          case 'conversation.message.delta':
            // 消息增量
            process.stdout.write(data.message_item?.content || '');
            break;
          case 'conversation.message.completed':
            // 消息完成
            console.log('\n消息完成:', data.message_item?.content);
            break;
          case 'conversation.chat.completed':
            // 对话完成
            console.log('对话完成, Token 使用:', data.run_record_item?.usage);
            break;
          case 'conversation.error':
            // 错误
            console.error('错误:', data.error);
            break;
          case 'conversation.stream.done':
            // 流结束
            console.log('流结束');
            break;
        }
      }
    }
  }
};

// 使用示例
chatWithBot(BOT_ID, '你好,请介绍一下你自己');
