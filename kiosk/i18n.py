"""Every string the kiosk shows, in English and Simplified Chinese."""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "zh")
DEFAULT_LANGUAGE: Final = "en"

_STRINGS: Final[dict[str, dict[str, str]]] = {
    "welcome": {"en": "Welcome to {store}", "zh": "欢迎光临 {store}"},
    "can_do": {
        "en": "See your points and coupons · Offers for you today · Sign in with your phone",
        "zh": "查看积分和优惠券 · 今日专属优惠 · 用手机登录",
    },
    "touch_to_start": {"en": "Touch to start", "zh": "点击开始"},
    "language": {"en": "中文", "zh": "English"},
    "identify_title": {"en": "Who are you?", "zh": "请登录"},
    "hold_phone": {
        "en": "Hold your phone near the kiosk with the StoreWave app open: we sign you in "
        "as soon as we hear it.",
        "zh": "打开 StoreWave 应用，把手机靠近本机：听到后自动为您登录。",
    },
    "listening": {"en": "Listening for your phone…", "zh": "正在识别您的手机…"},
    "or_phone": {"en": "Or sign in with your phone number", "zh": "或用手机号登录"},
    "phone_placeholder": {"en": "Phone number", "zh": "手机号"},
    "send_code": {"en": "Send me a code", "zh": "发送验证码"},
    "code_sent": {
        "en": "We sent a 6-digit code by text message. Type it here.",
        "zh": "验证码已通过短信发送，请输入 6 位数字。",
    },
    "code_placeholder": {"en": "6-digit code", "zh": "6 位验证码"},
    "sign_in": {"en": "Sign in", "zh": "登录"},
    "back": {"en": "Back", "zh": "返回"},
    "bad_phone": {
        "en": "That does not look like a phone number. Please check it.",
        "zh": "手机号格式不对，请检查。",
    },
    "bad_code": {
        "en": "That code is wrong or has expired. Please try again.",
        "zh": "验证码错误或已过期，请重试。",
    },
    "too_many": {
        "en": "Too many tries for now. Please wait a moment or ask our staff.",
        "zh": "尝试次数过多，请稍后再试或咨询店员。",
    },
    "refused": {
        "en": "Sorry, that did not work. Please ask our staff.",
        "zh": "抱歉，操作未成功，请咨询店员。",
    },
    "hub_down": {
        "en": "We cannot reach the store system right now. We keep trying; "
        "you can still use this screen.",
        "zh": "暂时无法连接门店系统，正在重试；本屏幕仍可使用。",
    },
    "hub_slow": {
        "en": "The store system is slow to answer. We keep trying.",
        "zh": "门店系统响应较慢，正在重试。",
    },
    "hello": {"en": "Hello!", "zh": "您好！"},
    "points": {"en": "Your points", "zh": "您的积分"},
    "points_value": {"en": "{points} points", "zh": "{points} 积分"},
    "points_need_phone": {
        "en": "Sign in with your phone number to see your points.",
        "zh": "用手机号登录即可查看积分。",
    },
    "coupons": {"en": "My coupons", "zh": "我的优惠券"},
    "no_coupons": {"en": "No coupons yet.", "zh": "暂无优惠券。"},
    "coupons_need_phone": {
        "en": "Sign in with your phone number to see your coupons.",
        "zh": "用手机号登录即可查看优惠券。",
    },
    "valid_until": {"en": "valid until {date}", "zh": "有效期至 {date}"},
    "no_expiry": {"en": "no expiry date", "zh": "长期有效"},
    "offers": {"en": "Offers for you now", "zh": "当前专属优惠"},
    "no_offers": {"en": "No offers right now.", "zh": "暂无优惠。"},
    "offer_points": {"en": "+{points} points", "zh": "+{points} 积分"},
    "offer_code": {"en": "code {code}", "zh": "券码 {code}"},
    "recommended": {"en": "Recommended for you", "zh": "为您推荐"},
    "services": {"en": "Services", "zh": "业务介绍"},
    "services_title": {"en": "Our services", "zh": "我们的业务"},
    "service_price": {
        "en": "{price} yuan a month · {days}-day free trial",
        "zh": "每月 {price} 元 · 免费试用 {days} 天",
    },
    "service_needs": {"en": "needs a {needs} phone", "zh": "需要 {needs} 手机"},
    "trial_hint": {
        "en": "Want to try one free? Our staff start the trial for you at the counter.",
        "zh": "想免费试用？请到柜台，店员为您开通试用。",
    },
    "no_services": {"en": "No services listed right now.", "zh": "暂无业务。"},
    "queue": {"en": "Queue ticket", "zh": "排队取号"},
    "your_number": {"en": "Your number", "zh": "您的号码"},
    "ahead": {
        "en": "{ahead} ahead of you · about {minutes} minutes",
        "zh": "前面还有 {ahead} 位 · 约 {minutes} 分钟",
    },
    "rate": {"en": "Rate your visit", "zh": "评价本次到店"},
    "rate_title": {"en": "How was your visit today?", "zh": "您对今天的到店体验满意吗？"},
    "comment_placeholder": {"en": "A comment (optional)", "zh": "留言（可选）"},
    "send": {"en": "Send", "zh": "提交"},
    "pick_stars": {"en": "Please pick 1 to 5 stars first.", "zh": "请先选择 1 到 5 星。"},
    "thanks": {"en": "Thank you for your rating!", "zh": "感谢您的评价！"},
    "done": {"en": "Sign out", "zh": "退出"},
    "loading": {"en": "Loading…", "zh": "加载中…"},
}


def translate(key: str, language: str, **values: object) -> str:
    """The string ``key`` in ``language`` (English if missing), with ``values`` filled in."""
    entry = _STRINGS[key]
    text = entry.get(language) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def keys() -> list[str]:
    """Every string key (for the completeness test)."""
    return list(_STRINGS)


def other_language(language: str) -> str:
    """The language the toggle switches to."""
    return LANGUAGES[(LANGUAGES.index(language) + 1) % len(LANGUAGES)]


def entry(key: str) -> dict[str, str]:
    """Every translation of ``key`` (for the completeness test)."""
    return dict(_STRINGS[key])
