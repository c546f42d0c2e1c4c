# The spec page's Python client sample, transcribed from
# conformance/spec/agent-api.zh.md, section "客户端示例 (Python)" (indentation restored;
# the page's rendering lost it, and Python's blocks admit one reading).
#
# Changed, and only this: the base URL, API key and bot id come from the environment
# (COZE_BASE_URL, COZE_API_KEY, COZE_BOT_ID) in place of 'https://your-domain.com',
# 'your_api_key' and 123456789 (the bot id stays the decimal string the server gave;
# str(bot_id) leaves it as it is). Every other line is the page's. What it prints is
# recorded by record.py (python record.py chat_requests.py). The imports are sorted
# (the page imports requests before json) and os is added.
import json
import os

import requests

BASE_URL = os.environ.get('COZE_BASE_URL', 'https://your-domain.com')
API_KEY = os.environ.get('COZE_API_KEY', 'your_api_key')
BOT_ID = os.environ.get('COZE_BOT_ID', 123456789)


def chat_with_bot(bot_id, message):
    url = BASE_URL + '/v3/chat'
    headers = {
        'Content-Type': 'application/json',
        'Authorization': 'Bearer ' + API_KEY
    }
    data = {
        'bot_id': str(bot_id),
        'user_id': 'user_001',
        'stream': True,
        'additional_messages': [
            {
                'role': 'user',
                'content': message,
                'content_type': 'text'
            }
        ]
    }

    response = requests.post(url, headers=headers, json=data, stream=True)

    for line in response.iter_lines():
        if line:
            line_str = line.decode('utf-8')

            if line_str.startswith('event: '):
                event_type = line_str[7:].strip()
                print(f'事件类型: {event_type}')
            elif line_str.startswith('data: '):
                data = json.loads(line_str[6:])

                # 处理不同事件类型
                event = data.get('event')
                if event == 'conversation.message.delta':
                    # 消息增量
                    print(data.get('message_item', {}).get('content', ''), end='', flush=True)
                elif event == 'conversation.message.completed':
                    # 消息完成
                    print(f"\n消息完成: {data.get('message_item', {}).get('content')}")
                elif event == 'conversation.chat.completed':
                    # 对话完成
                    print(f"对话完成, Token 使用: {data.get('run_record_item', {}).get('usage')}")
                elif event == 'conversation.error':
                    # 错误
                    print(f"错误: {data.get('error')}")
                elif event == 'conversation.stream.done':
                    # 流结束
                    print('流结束')


# 使用示例
chat_with_bot(BOT_ID, '你好,请介绍一下你自己')
