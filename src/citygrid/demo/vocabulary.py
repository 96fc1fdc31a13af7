"""Words of the demo city: street names, roads, surnames, given names, divisions, shops.

All names of people and organisations made from these are synthetic; the streets and roads
are Yuexiu's real ones (communities are invented).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Street:
    """A street (街道) of Yuexiu: names, a seed point for the layout, and roads for addresses."""

    name_zh: str
    name_en: str
    seed_lon: float
    seed_lat: float
    roads: tuple[str, ...]


# In code order: 洪桥 is street 001. Seed points sit roughly where the real streets lie.
STREETS: tuple[Street, ...] = (
    Street("洪桥", "Hongqiao", 113.262, 23.150, ("解放北路", "盘福路", "东风西路", "应元路")),
    Street("北京", "Beijing", 113.271, 23.122, ("北京路", "文明路", "大南路", "西湖路")),
    Street("六榕", "Liurong", 113.262, 23.134, ("六榕路", "解放中路", "光孝路", "中山六路")),
    Street("流花", "Liuhua", 113.249, 23.146, ("流花路", "人民北路", "环市西路", "站前路")),
    Street("光塔", "Guangta", 113.258, 23.125, ("光塔路", "海珠中路", "诗书路", "惠福西路")),
    Street("人民", "Renmin", 113.246, 23.121, ("人民中路", "人民南路", "一德路", "泰康路")),
    Street("东山", "Dongshan", 113.298, 23.124, ("署前路", "寺贝通津", "新河浦路", "庙前直街")),
    Street("农林", "Nonglin", 113.296, 23.134, ("农林下路", "东风东路", "中山一路", "龟岗大马路")),
    Street("梅花村", "Meihuacun", 113.309, 23.134, ("梅东路", "中山一路", "杨箕大街", "共和路")),
    Street("黄花岗", "Huanghuagang", 113.300, 23.146, ("先烈中路", "黄花路", "永福路", "水荫路")),
    Street("华乐", "Huale", 113.287, 23.146, ("华乐路", "环市东路", "淘金路", "建设六马路")),
    Street("建设", "Jianshe", 113.284, 23.136, ("建设大马路", "东风中路", "越秀北路", "法政路")),
    Street("大塘", "Datang", 113.278, 23.125, ("越华路", "文德路", "中山四路", "豪贤路")),
    Street("珠光", "Zhuguang", 113.281, 23.116, ("珠光路", "东华西路", "越秀南路", "泰康路")),
    Street("大东", "Dadong", 113.289, 23.125, ("东华东路", "越秀中路", "中山三路", "大沙头路")),
    Street("白云", "Baiyun", 113.303, 23.112, ("沿江东路", "东湖路", "晴澜路", "二沙岛大道")),
    Street("登峰", "Dengfeng", 113.290, 23.162, ("登峰路", "广园中路", "下塘西路", "麓湖路")),
    Street("矿泉", "Kuangquan", 113.254, 23.163, ("矿泉路", "广园西路", "沙涌南路", "瑶台路")),
)

# Place words (zh, pinyin) for synthetic community names.
_PLACE_WORDS: tuple[tuple[str, str], ...] = (
    ("越华", "Yuehua"), ("仓边", "Cangbian"), ("德政", "Dezheng"), ("豪贤", "Haoxian"),
    ("文德", "Wende"), ("龙藏", "Longcang"), ("大南", "Danan"), ("素波", "Subo"),
    ("回龙", "Huilong"), ("万福", "Wanfu"), ("小北", "Xiaobei"), ("应元", "Yingyuan"),
    ("执信", "Zhixin"), ("寺右", "Siyou"), ("五羊", "Wuyang"), ("淘金", "Taojin"),
    ("麓湖", "Luhu"), ("百灵", "Bailing"), ("福今", "Fujin"), ("盘福", "Panfu"),
    ("光孝", "Guangxiao"), ("诗书", "Shishu"), ("惠福", "Huifu"), ("大新", "Daxin"),
    ("米市", "Mishi"), ("流水", "Liushui"), ("榨粉", "Zhafen"), ("海珠", "Haizhu"),
    ("广卫", "Guangwei"), ("盐运", "Yanyun"), ("西湖", "Xihu"), ("教育", "Jiaoyu"),
    ("东湖", "Donghu"), ("新河", "Xinhe"), ("竹丝", "Zhusi"), ("锦荣", "Jinrong"),
    ("松岗", "Songgang"), ("犀牛", "Xiniu"), ("建新", "Jianxin"), ("永福", "Yongfu"),
    ("黄华", "Huanghua"), ("杨箕", "Yangji"), ("东园", "Dongyuan"), ("梅东", "Meidong"),
    ("达道", "Dadao"), ("兴隆", "Xinglong"), ("雅荷", "Yahe"), ("大沙", "Dasha"),
    ("晴澜", "Qinglan"), ("云台", "Yuntai"), ("桂花", "Guihua"), ("瑶台", "Yaotai"),
    ("王圣", "Wangsheng"), ("走马", "Zouma"), ("三眼", "Sanyan"), ("下塘", "Xiatang"),
    ("水均", "Shuijun"), ("金桂", "Jingui"), ("象岗", "Xianggang"), ("芝兰", "Zhilan"),
    ("朱紫", "Zhuzi"), ("纸行", "Zhihang"), ("聚龙", "Julong"), ("长庚", "Changgeng"),
    ("青云", "Qingyun"), ("文昌", "Wenchang"), ("法政", "Fazheng"), ("铁局", "Tieju"),
    ("将军", "Jiangjun"), ("华侨", "Huaqiao"),
)  # fmt: skip
_PLACE_SUFFIXES: tuple[tuple[str, str], ...] = (
    ("东", "dong"), ("西", "xi"), ("南", "nan"), ("北", "bei"),
    ("新村", "xincun"), ("里", "li"), ("坊", "fang"),
)  # fmt: skip


def community_names(rng: np.random.Generator, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (zh, pinyin) community names: plain place words first."""
    plain = list(_PLACE_WORDS)
    suffixed = [(zh + szh, en + sen) for zh, en in _PLACE_WORDS for szh, sen in _PLACE_SUFFIXES]
    order_plain = rng.permutation(len(plain))
    order_suffixed = rng.permutation(len(suffixed))
    names = [plain[i] for i in order_plain] + [suffixed[i] for i in order_suffixed]
    if count > len(names):
        raise ValueError("not enough community names")
    return names[:count]


# Surnames with their weights in China as a whole and in Guangdong (per mille, rounded).
SURNAMES: tuple[tuple[str, float, float], ...] = (
    ("王", 71, 20), ("李", 70, 48), ("张", 68, 36), ("刘", 54, 24), ("陈", 45, 100),
    ("杨", 31, 16), ("黄", 22, 72), ("赵", 22, 5), ("吴", 20, 25), ("周", 19, 14),
    ("徐", 17, 9), ("孙", 15, 4), ("马", 13, 8), ("朱", 12, 10), ("胡", 12, 10),
    ("郭", 11, 12), ("何", 11, 32), ("高", 10, 6), ("林", 10, 45), ("罗", 9, 30),
    ("郑", 9, 22), ("梁", 8, 42), ("谢", 8, 22), ("宋", 7, 3), ("唐", 7, 6),
    ("许", 6, 12), ("韩", 6, 3), ("冯", 6, 12), ("邓", 5, 18), ("曹", 5, 4),
    ("彭", 5, 6), ("曾", 5, 16), ("肖", 5, 8), ("田", 4, 2), ("董", 4, 2),
    ("袁", 4, 4), ("潘", 4, 8), ("于", 4, 1), ("蒋", 4, 2), ("蔡", 4, 12),
    ("余", 4, 12), ("杜", 3, 2), ("叶", 3, 14), ("程", 3, 2), ("苏", 3, 8),
    ("魏", 3, 2), ("吕", 3, 3), ("丁", 3, 2), ("任", 3, 2), ("沈", 3, 2),
    ("姚", 2, 4), ("卢", 2, 10), ("姜", 2, 1), ("崔", 2, 1), ("钟", 2, 12),
    ("谭", 2, 10), ("陆", 2, 6), ("汪", 2, 2), ("范", 2, 3), ("金", 2, 2),
    ("石", 2, 2), ("廖", 2, 10), ("贾", 2, 1), ("夏", 2, 2), ("韦", 2, 6),
    ("方", 2, 5), ("邹", 2, 4), ("欧阳", 0.3, 3), ("司徒", 0.1, 2), ("麦", 0.3, 6),
    ("冼", 0.1, 3), ("区", 0.1, 3), ("关", 0.5, 5), ("温", 1, 5), ("莫", 1, 5),
)  # fmt: skip

MALE_CHARS = "伟强磊军勇杰涛明超华建国志文俊浩宇鹏辉斌峰波刚健坤荣锦添耀森海成毅嘉轩晨子豪翔"
FEMALE_CHARS = "芳娜敏静丽艳娟霞燕玲婷雪慧颖琳欣怡佳蕾倩美秀英萍红梅琴晓彤诗雅欣妍凤嘉宁"
NEUTRAL_CHARS = "子文思嘉俊晓永志明家宇晨雨安欣泽一梓"

# Divisions of birth (GB/T 2260, county level). Dongshan District (440102) was merged into
# Yuexiu in 2005: older residents born there carry its code.
GUANGZHOU_DIVISIONS: tuple[tuple[str, float], ...] = (
    ("440104", 46), ("440102", 14), ("440103", 9), ("440105", 8), ("440106", 7),
    ("440111", 5), ("440112", 2), ("440113", 2), ("440114", 1), ("440118", 1),
    # Registered residents born elsewhere in Guangdong.
    ("440604", 1.5), ("441302", 1), ("440507", 1), ("445102", 0.8), ("440802", 0.7),
)  # fmt: skip
MIGRANT_DIVISIONS: tuple[tuple[str, float], ...] = (
    ("430102", 6), ("430602", 5), ("431002", 6), ("430421", 4), ("450102", 5),
    ("450802", 4), ("450902", 5), ("360102", 3), ("360702", 5), ("510104", 4),
    ("511302", 3), ("500101", 3), ("420102", 4), ("421002", 3), ("410102", 3),
    ("411302", 4), ("520302", 3), ("522601", 2), ("350102", 2), ("340102", 2),
    ("460105", 1), ("220102", 1), ("370102", 1), ("610102", 1), ("441402", 3),
    ("445202", 3), ("441302", 2),
)  # fmt: skip

# Ethnic groups other than Han, by province of birth (share of people born there).
ETHNIC_MINORITIES: dict[str, tuple[tuple[str, float], ...]] = {
    "45": (("壮族", 0.30), ("瑶族", 0.03)),
    "52": (("苗族", 0.12), ("布依族", 0.08), ("侗族", 0.05)),
    "43": (("土家族", 0.04), ("苗族", 0.03), ("瑶族", 0.01)),
    "46": (("黎族", 0.15),),
    "22": (("朝鲜族", 0.03), ("满族", 0.04)),
    "44": (("壮族", 0.003), ("回族", 0.002), ("满族", 0.001)),
}

MOBILE_PREFIXES = (
    "130",
    "131",
    "132",
    "133",
    "134",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "173",
    "175",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "184",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
)

BRAND_FIRST = "越穗粤珠华宏恒金和德嘉骏卓鸿瑞兴泰盛富信"
BRAND_SECOND = "秀华海江达信丰顺安隆源盈通辉泰成航汇展宇"
SHOP_KINDS = (
    "肠粉店", "茶餐厅", "便利店", "药房", "五金店", "美发店", "烧腊店", "粥粉面店",
    "水果店", "文具店", "眼镜店", "干洗店", "花店", "糖水铺", "手机维修店", "面包店",
)  # fmt: skip
COMPANY_KINDS = (
    "科技", "贸易", "餐饮管理", "物业管理", "文化传播", "医疗器械", "建筑工程",
    "服装", "教育咨询", "物流", "广告", "设计", "旅行社", "电子", "会计服务",
)  # fmt: skip
BUILDING_SUFFIXES = ("大厦", "花园", "广场", "苑", "中心")
