"""The web UI's words, in Chinese (the default) and English.

One table: a key missing from a language is a test failure (tests/test_web_i18n.py), not an
English word in a Chinese page.
"""

from __future__ import annotations

from typing import Literal

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")

STRINGS: dict[str, dict[Lang, str]] = {
    "app": {"zh": "碉楼", "en": "Diaolou"},
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "sign_out": {"zh": "退出", "en": "Sign out"},
    "sign_out_everywhere": {"zh": "退出所有设备", "en": "Sign out everywhere"},
    "username": {"zh": "用户名", "en": "User name"},
    "password": {"zh": "密码", "en": "Password"},
    "cameras": {"zh": "摄像头", "en": "Cameras"},
    "alerts": {"zh": "告警", "en": "Alerts"},
    "devices": {"zh": "设备", "en": "Devices"},
    "users": {"zh": "用户", "en": "Users"},
    "audit": {"zh": "审计", "en": "Audit"},
    "online": {"zh": "在线", "en": "Online"},
    "offline": {"zh": "离线", "en": "Offline"},
    "no_cameras": {"zh": "还没有可查看的摄像头。", "en": "No cameras to show yet."},
    "no_alerts": {"zh": "没有告警。", "en": "No alerts."},
    "last_alert": {"zh": "最近告警", "en": "Last alert"},
    "none": {"zh": "无", "en": "None"},
    "camera": {"zh": "摄像头", "en": "Camera"},
    "all_cameras": {"zh": "全部摄像头", "en": "All cameras"},
    "zone": {"zh": "区域", "en": "Zone"},
    "since": {"zh": "开始", "en": "From"},
    "until": {"zh": "结束", "en": "To"},
    "filter": {"zh": "筛选", "en": "Filter"},
    "sound": {"zh": "提示音", "en": "Sound"},
    "older": {"zh": "更早", "en": "Older"},
    "time": {"zh": "时间", "en": "Time"},
    "score": {"zh": "置信度", "en": "Score"},
    "persons": {"zh": "人数", "en": "Persons"},
    "kind_person": {"zh": "有人", "en": "Person"},
    "kind_camera_offline": {"zh": "摄像头离线", "en": "Camera offline"},
    "kind_camera_back": {"zh": "摄像头恢复", "en": "Camera back"},
    "kind_disk_full": {"zh": "磁盘已满", "en": "Disk full"},
    "kind_test": {"zh": "测试", "en": "Test"},
    "watch_live": {"zh": "实时查看", "en": "Watch live"},
    "play_back": {"zh": "从此处回放", "en": "Play back from here"},
    "coming_soon": {"zh": "即将推出", "en": "Coming soon"},
    "no_snapshot": {"zh": "无截图", "en": "No snapshot"},
    "site": {"zh": "站点", "en": "Site"},
    "device": {"zh": "设备", "en": "Device"},
    "state": {"zh": "状态", "en": "State"},
    "last_seen": {"zh": "最后在线", "en": "Last seen"},
    "cpu": {"zh": "CPU", "en": "CPU"},
    "memory": {"zh": "内存", "en": "Memory"},
    "disk_free": {"zh": "磁盘可用", "en": "Disk free"},
    "temperature": {"zh": "温度", "en": "Temperature"},
    "outbox": {"zh": "待发消息", "en": "Outbox"},
    "rejections": {"zh": "拒收", "en": "Rejected"},
    "role": {"zh": "角色", "en": "Role"},
    "role_admin": {"zh": "管理员", "en": "Admin"},
    "role_shop_owner": {"zh": "店主", "en": "Shop owner"},
    "role_police": {"zh": "民警", "en": "Police"},
    "role_dorm_manager": {"zh": "宿舍管理员", "en": "Dorm manager"},
    "role_grid_worker": {"zh": "网格员", "en": "Grid worker"},
    "add_user": {"zh": "添加用户", "en": "Add user"},
    "cameras_ids": {"zh": "摄像头编号（逗号分隔）", "en": "Camera ids (comma-separated)"},
    "sites": {"zh": "辖区站点（逗号分隔）", "en": "Sites (comma-separated)"},
    "locked": {"zh": "已锁定", "en": "Locked"},
    "unlock": {"zh": "解锁", "en": "Unlock"},
    "remove": {"zh": "删除", "en": "Remove"},
    "confirm_remove": {"zh": "确定删除该用户？", "en": "Remove this user?"},
    "actor": {"zh": "操作人", "en": "Who"},
    "action": {"zh": "操作", "en": "Action"},
    "target": {"zh": "对象", "en": "Target"},
    "address": {"zh": "地址", "en": "Address"},
    "export_csv": {"zh": "导出 CSV", "en": "Export CSV"},
    "chain_ok": {"zh": "审计链完整", "en": "Audit chain intact"},
    "chain_bad": {"zh": "审计链被篡改", "en": "Audit chain broken"},
    "rows": {"zh": "条", "en": "rows"},
    "not_found": {"zh": "找不到该页面或您无权查看。", "en": "Not found, or not yours to see."},
    "forbidden": {"zh": "您无权执行此操作。", "en": "You may not do this."},
    "error": {"zh": "出错了", "en": "Something went wrong"},
    "back": {"zh": "返回", "en": "Back"},
    "new_alert": {"zh": "新告警", "en": "New alert"},
    "language": {"zh": "English", "en": "中文"},
    "signed_in_as": {"zh": "当前用户", "en": "Signed in as"},
    "wrong_login": {"zh": "用户名或密码错误", "en": "Wrong user name or password"},
}


def translate(lang: Lang, key: str) -> str:
    return STRINGS[key][lang]
