"""Every string the kiosk shows, in English and Simplified Chinese."""

from __future__ import annotations

from typing import Final

LANGUAGES: Final = ("en", "zh")
DEFAULT_LANGUAGE: Final = "en"

_STRINGS: Final[dict[str, dict[str, str]]] = {
    "welcome": {"en": "Welcome to {store}", "zh": "欢迎光临 {store}"},
    "can_do": {
        "en": "Points and coupons · Offers for you · Try services free · "
        "Pick up online orders · Queue tickets",
        "zh": "积分和优惠券 · 专属优惠 · 免费试用业务 · 网上订单自提 · 排队取号",
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
    "coupons": {"en": "My coupons", "zh": "我的优惠券"},
    "no_coupons": {"en": "No coupons yet.", "zh": "暂无优惠券。"},
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
        "en": "Try a service free here, or keep one you are trying. Questions? Ask our staff.",
        "zh": "可在此免费试用业务或保留试用中的业务。如有疑问请咨询店员。",
    },
    "no_services": {"en": "No services listed right now.", "zh": "暂无业务。"},
    "queue": {"en": "Queue ticket", "zh": "排队取号"},
    "your_number": {"en": "Your number", "zh": "您的号码"},
    "ahead": {
        "en": "{ahead} ahead of you · about {minutes} minutes",
        "zh": "前面还有 {ahead} 位 · 约 {minutes} 分钟",
    },
    "now_serving": {"en": "Now serving number {number}", "zh": "当前叫号 {number}"},
    "rate": {"en": "Rate visit", "zh": "评价到店"},
    "rate_title": {"en": "How was your visit today?", "zh": "您对今天的到店体验满意吗？"},
    "comment_placeholder": {"en": "A comment (optional)", "zh": "留言（可选）"},
    "send": {"en": "Send", "zh": "提交"},
    "pick_stars": {"en": "Please pick 1 to 5 stars first.", "zh": "请先选择 1 到 5 星。"},
    "thanks": {"en": "Thank you for your rating!", "zh": "感谢您的评价！"},
    "points_hold_again": {
        "en": "Hold your phone near the kiosk again to see your points and coupons.",
        "zh": "请再次将手机靠近本机以查看积分和优惠券。",
    },
    "hold_again": {
        "en": "We need to hear your phone again: hold it near the kiosk, then try once more.",
        "zh": "需要再次识别您的手机：请将手机靠近本机后重试。",
    },
    "try_free": {"en": "Try free for {days} days", "zh": "免费试用 {days} 天"},
    "keep_it": {"en": "Keep it · {price} yuan a month", "zh": "保留 · 每月 {price} 元"},
    "on_trial": {"en": "On free trial until {date}", "zh": "免费试用至 {date}"},
    "subscribed": {"en": "✓ You have this service", "zh": "✓ 您已开通此业务"},
    "trial_used": {
        "en": "Free trial used · ask our staff to subscribe",
        "zh": "已试用过 · 如需开通请咨询店员",
    },
    "trial_title": {"en": "Try {name} free", "zh": "免费试用 {name}"},
    "trial_terms": {
        "en": "{days} days free, then nothing happens unless you choose to keep it "
        "({price} yuan a month).",
        "zh": "免费 {days} 天，到期后除非您选择保留（每月 {price} 元），不会自动收费。",
    },
    "phone_has": {"en": "Your phone has:", "zh": "您的手机支持："},
    "consent_box": {
        "en": "Text me the service manual and reminders about this trial",
        "zh": "通过短信发送业务使用说明和试用提醒",
    },
    "start_trial": {"en": "Start my free trial", "zh": "开始免费试用"},
    "trial_started": {
        "en": "Your free trial runs until {date}. We are texting you the service manual.",
        "zh": "您的免费试用至 {date}。业务使用说明将通过短信发送给您。",
    },
    "trial_handset": {
        "en": "This service needs a phone with {needs}. It will not work on this phone.",
        "zh": "此业务需要支持 {needs} 的手机，您的手机暂不适用。",
    },
    "trial_consent": {
        "en": "Please tick the box: a trial comes with its manual and reminders by text.",
        "zh": "请勾选短信通知：试用需要通过短信发送说明和提醒。",
    },
    "trial_already": {
        "en": "You already have or have tried this service.",
        "zh": "您已开通或试用过此业务。",
    },
    "keep_title": {"en": "Keep {name}?", "zh": "保留 {name}？"},
    "keep_terms": {
        "en": "From today {price} yuan a month on your phone bill. You can cancel at the counter.",
        "zh": "自今日起每月 {price} 元计入话费，可到柜台取消。",
    },
    "keep_yes": {"en": "Yes, keep it", "zh": "确认保留"},
    "kept": {"en": "Done: {name} is yours. Thank you!", "zh": "已开通 {name}，谢谢！"},
    "trial_kept_already": {"en": "You already kept this service.", "zh": "您已开通此业务。"},
    "pickup": {"en": "Pick up order", "zh": "自提订单"},
    "pickup_title": {"en": "Pick up an online order", "zh": "领取网上订单"},
    "pickup_hint": {
        "en": "Type the order number from your order confirmation.",
        "zh": "请输入订单确认信息中的订单号。",
    },
    "order_placeholder": {"en": "Order number", "zh": "订单号"},
    "find_order": {"en": "Find my order", "zh": "查找订单"},
    "order_ready": {
        "en": "Your {product} (order {code}) is ready. Please go to the counter: "
        "our staff are bringing it to you.",
        "zh": "您的{product}（订单 {code}）已备好，请到柜台领取，店员正在为您取件。",
    },
    "order_ready_again": {
        "en": "Our staff already know you are here for order {code}. Please go to the counter.",
        "zh": "店员已知道您来领取订单 {code}，请到柜台。",
    },
    "order_not_found": {
        "en": "We found no order with that number for you at this store. Please check it.",
        "zh": "本店没有找到您的这个订单号，请检查。",
    },
    "order_not_ready": {
        "en": "Your order is not ready yet. We will text you when it is.",
        "zh": "您的订单尚未备好，备好后会短信通知您。",
    },
    "order_collected": {
        "en": "This order was already handed over.",
        "zh": "此订单已领取。",
    },
    "order_not_pickup": {
        "en": "This order is done by a visit or on your account: there is nothing to pick up.",
        "zh": "此订单为上门或线上办理，无需到店领取。",
    },
    "order_empty": {"en": "Please type your order number.", "zh": "请输入订单号。"},
    "product_sim_card": {"en": "SIM card", "zh": "SIM 卡"},
    "product_device": {"en": "phone", "zh": "手机"},
    "done": {"en": "Sign out", "zh": "退出"},
    "loading": {"en": "Loading…", "zh": "加载中…"},
}


def translate(key: str, language: str, **values: object) -> str:
    """The string ``key`` in ``language`` (English if missing), with ``values`` filled in."""
    entry = _STRINGS[key]
    text = entry.get(language) or entry[DEFAULT_LANGUAGE]
    return text.format(**values) if values else text


def has(key: str) -> bool:
    """Whether there is a string ``key`` (for texts named after hub values)."""
    return key in _STRINGS


def keys() -> list[str]:
    """Every string key (for the completeness test)."""
    return list(_STRINGS)


def other_language(language: str) -> str:
    """The language the toggle switches to."""
    return LANGUAGES[(LANGUAGES.index(language) + 1) % len(LANGUAGES)]


def entry(key: str) -> dict[str, str]:
    """Every translation of ``key`` (for the completeness test)."""
    return dict(_STRINGS[key])
