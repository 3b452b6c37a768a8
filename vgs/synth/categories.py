"""Object categories of the synthetic scenes: one-word names, their plurals, and the colour emoji drawn.

Names are everyday words that CMUdict knows (so aligners need no G2P for them) and most have an
ImageNet counterpart, so the vision stage's ImageNet labels can be checked against them."""

# (name, plural, emoji, kind); kind picks the verbs the caption grammar may use.
CATEGORIES = [
    ("dog", "dogs", "\U0001F415", "animal"), ("cat", "cats", "\U0001F408", "animal"),
    ("horse", "horses", "\U0001F40E", "animal"), ("cow", "cows", "\U0001F404", "animal"),
    ("pig", "pigs", "\U0001F416", "animal"), ("rabbit", "rabbits", "\U0001F407", "animal"),
    ("mouse", "mice", "\U0001F401", "animal"), ("frog", "frogs", "\U0001F438", "animal"),
    ("turtle", "turtles", "\U0001F422", "animal"), ("snail", "snails", "\U0001F40C", "animal"),
    ("fish", "fish", "\U0001F41F", "animal"), ("elephant", "elephants", "\U0001F418", "animal"),
    ("monkey", "monkeys", "\U0001F412", "animal"), ("penguin", "penguins", "\U0001F427", "animal"),
    ("owl", "owls", "\U0001F989", "animal"), ("chicken", "chickens", "\U0001F414", "animal"),
    ("duck", "ducks", "\U0001F986", "animal"), ("bee", "bees", "\U0001F41D", "animal"),
    ("butterfly", "butterflies", "\U0001F98B", "animal"), ("spider", "spiders", "\U0001F577", "animal"),
    ("snake", "snakes", "\U0001F40D", "animal"), ("whale", "whales", "\U0001F40B", "animal"),
    ("camel", "camels", "\U0001F42B", "animal"), ("zebra", "zebras", "\U0001F993", "animal"),
    ("banana", "bananas", "\U0001F34C", "food"), ("apple", "apples", "\U0001F34E", "food"),
    ("lemon", "lemons", "\U0001F34B", "food"), ("strawberry", "strawberries", "\U0001F353", "food"),
    ("pineapple", "pineapples", "\U0001F34D", "food"), ("pizza", "pizzas", "\U0001F355", "food"),
    ("burger", "burgers", "\U0001F354", "food"), ("broccoli", "broccoli", "\U0001F966", "food"),
    ("mushroom", "mushrooms", "\U0001F344", "food"), ("carrot", "carrots", "\U0001F955", "food"),
    ("cake", "cakes", "\U0001F370", "food"), ("bread", "breads", "\U0001F35E", "food"),
    ("car", "cars", "\U0001F697", "vehicle"), ("bus", "buses", "\U0001F68C", "vehicle"),
    ("bicycle", "bicycles", "\U0001F6B2", "vehicle"), ("airplane", "airplanes", "\u2708\ufe0f", "vehicle"),
    ("boat", "boats", "\u26F5", "vehicle"), ("train", "trains", "\U0001F686", "vehicle"),
    ("tractor", "tractors", "\U0001F69C", "vehicle"), ("rocket", "rockets", "\U0001F680", "vehicle"),
    ("umbrella", "umbrellas", "\u2602\ufe0f", "thing"), ("guitar", "guitars", "\U0001F3B8", "thing"),
    ("violin", "violins", "\U0001F3BB", "thing"), ("drum", "drums", "\U0001F941", "thing"),
    ("trumpet", "trumpets", "\U0001F3BA", "thing"), ("ball", "balls", "\u26BD", "thing"),
    ("balloon", "balloons", "\U0001F388", "thing"), ("clock", "clocks", "\u23F0", "thing"),
    ("laptop", "laptops", "\U0001F4BB", "thing"), ("phone", "phones", "\U0001F4F1", "thing"),
    ("camera", "cameras", "\U0001F4F7", "thing"), ("key", "keys", "\U0001F511", "thing"),
    ("hammer", "hammers", "\U0001F528", "thing"), ("backpack", "backpacks", "\U0001F392", "thing"),
    ("shoe", "shoes", "\U0001F45F", "thing"), ("hat", "hats", "\U0001F3A9", "thing"),
    ("cup", "cups", "\u2615", "thing"), ("candle", "candles", "\U0001F56F", "thing"),
    ("book", "books", "\U0001F4D5", "thing"), ("tree", "trees", "\U0001F333", "thing"),
]
